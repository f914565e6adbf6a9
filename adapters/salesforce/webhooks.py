"""Outbound Messages: verify (size, XML safety, organization id) and parse SOAP notifications.

Outbound Messages carry no signature; the organization id in the message must be the
connection's. Parsing uses defusedxml, which refuses DTDs, entities and external references.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from adapters.base import WebhookEvent
from adapters.salesforce import mapping
from adapters.salesforce import settings as S
from connector.errors import WebhookRejected

_ENV = f"{{{S.SOAP_ENV_NS}}}"
_OM = f"{{{S.OUTBOUND_NS}}}"
_NIL = f"{{{S.XSI_NS}}}nil"
_TYPE = f"{{{S.XSI_NS}}}type"


def _reject(message: str, status: int = 400, hint: str | None = None) -> WebhookRejected:
    return WebhookRejected(message, status=status, crm=S.CRM, hint=hint)


def same_org(a: str, b: str) -> bool:
    """Org ids compare on their case-sensitive 15-character form (18-character ids add a checksum)."""
    return a[:15] == b[:15]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(parent: Element, tag: str) -> str | None:
    node = parent.find(tag)
    if node is None or node.get(_NIL) == "true":
        return None
    return (node.text or "").strip()


def _fields(sobject: Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in sobject:
        out[_local(child.tag)] = None if child.get(_NIL) == "true" else (child.text or "")
    return out


def _event(notification: Element) -> WebhookEvent:
    nid = _text(notification, f"{_OM}Id")
    sobject = notification.find(f"{_OM}sObject")
    if not nid or sobject is None:
        raise _reject(
            "a Notification has no Id or no sObject",
            hint="send notifications as the outbound WSDL defines them",
        )
    type_name = (sobject.get(_TYPE) or "").rsplit(":", 1)[-1]
    record = _fields(sobject)
    stamp = next((record[f] for f in S.OUTBOUND_STAMP_FIELDS if record.get(f)), None)
    try:
        occurred = mapping.parse_datetime(stamp)
    except ValueError:
        raise _reject(f"notification {nid} has an unreadable timestamp {stamp!r}") from None
    return WebhookEvent(
        dedupe_key=nid,
        object=S.UNIFIED_BY_SOBJECT.get(type_name),
        external_id=record.get(S.ID_FIELD),
        kind="updated",
        occurred_at=occurred,
        changed_fields=(),  # a message carries the record's current values, not which fields changed
        source="outbound_message",
        payload={"sobject": type_name, "notification_id": nid, "record": record},
    )


def parse_outbound_message(
    headers: Mapping[str, str],
    body: bytes,
    *,
    org_id: str | None,
    max_bytes: int = S.WEBHOOK_MAX_BYTES,
    method: str = "POST",
) -> list[WebhookEvent]:
    """The events of one Outbound Message; WebhookRejected (with its 4xx) when it must be refused."""
    if method.upper() != "POST":
        raise _reject(f"Outbound Messages are POSTed, not sent with {method}", status=405)
    if len(body) > max_bytes:
        raise _reject(f"the message is {len(body)} bytes; the limit is {max_bytes}", status=413)
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if ctype and "xml" not in ctype.lower():
        raise _reject(f"expected a text/xml SOAP message, got {ctype}", status=415)
    if not org_id:
        raise _reject(
            "this connection has no organization id to check the message against",
            status=403,
            hint="reconnect it (`rapport connect salesforce`) so its organization id is stored",
        )
    if not body.strip():
        raise _reject("the message is empty")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise _reject(
            f"the XML uses a DTD, entities or external references, which are refused ({type(exc).__name__})"
        ) from None
    except ParseError as exc:
        raise _reject(f"the body is not well-formed XML: {exc}") from None
    notifications = root.find(f"{_ENV}Body/{_OM}notifications")
    if root.tag != f"{_ENV}Envelope" or notifications is None:
        raise _reject("not an Outbound Message: expected soapenv:Envelope/soapenv:Body/notifications")
    sent_org = _text(notifications, f"{_OM}OrganizationId")
    if not sent_org:
        raise _reject("the message has no OrganizationId")
    if not same_org(sent_org, org_id):
        raise _reject(f"organization {sent_org} is not this connection's organization", status=403)
    items = notifications.findall(f"{_OM}Notification")
    if not items:
        raise _reject("the message holds no Notification")
    if len(items) > S.OUTBOUND_MAX_NOTIFICATIONS:
        raise _reject(
            f"the message holds {len(items)} notifications; Salesforce sends at most {S.OUTBOUND_MAX_NOTIFICATIONS}"
        )
    return [_event(n) for n in items]
