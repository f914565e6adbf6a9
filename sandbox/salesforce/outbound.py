"""Outbound Messages: per-object rules name the fields to send; every create or update of a matching
record queues a notification (04l… id, the dedupe key). A background thread POSTs SOAP messages of up
to 100 notifications with the record's current data, retries with exponential backoff until the
exact acknowledgement comes back, and drops notifications older than the horizon.
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from defusedxml import ElementTree

from sandbox.salesforce.store import Org, Record

OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
MAX_PER_MESSAGE = 100


@dataclass
class Notification:
    """One queued notification."""

    id: str
    object: str
    record_id: str
    enqueued: float
    due: float
    attempts: int = 0


@dataclass
class Rule:
    """The fields one object's outbound message sends."""

    fields: list[str]
    session_id: bool = False
    action_id: str = ""


@dataclass
class Settings:
    """Delivery settings (seconds); tests shorten the backoff and the horizon."""

    url: str | None = None
    backoff_base: float = 1.0
    backoff_max: float = 7200.0
    horizon: float = 86400.0
    timeout: float = 60.0
    verify: bool | str = True
    batch_window: float = 0.1
    extra: dict[str, Any] = field(default_factory=dict)


class Outbound:
    """The sender: queue, rules, delivery log and the thread."""

    def __init__(self, org: Org, instance_url: str = "", settings: Settings | None = None,
                 session_factory: Any = None) -> None:
        self.org = org
        self.instance_url = instance_url
        self.settings = settings or Settings()
        self.rules: dict[str, Rule] = {}
        self.pending: list[Notification] = []
        self.log: deque[dict[str, Any]] = deque(maxlen=2000)
        self.counts = {"queued": 0, "delivered": 0, "dropped": 0, "attempts": 0, "failed_attempts": 0}
        self._session_factory = session_factory
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = requests.Session()
        org.listeners.append(self.on_change)

    # -- configuration ---------------------------------------------------------------------------
    def set_rules(self, rules: dict[str, Any]) -> dict[str, list[str]]:
        """Replace the rules: {object: [fields]} or {object: {"fields": [...], "session_id": bool}}."""
        parsed: dict[str, Rule] = {}
        for name, spec in rules.items():
            obj = self.org.schema.get(name)
            if obj is None:
                raise ValueError(f"unknown object {name!r} in outbound rules")
            fields = spec.get("fields", []) if isinstance(spec, dict) else list(spec)
            canon = []
            for f in ["Id", *fields]:
                fdef = obj.field(f)
                if fdef is None:
                    raise ValueError(f"{obj.name} has no field {f!r}: outbound rules can only name existing fields")
                if fdef.name not in canon:
                    canon.append(fdef.name)
            parsed[obj.name] = Rule(canon, bool(spec.get("session_id")) if isinstance(spec, dict) else False,
                                    self.org.ids.for_object("Action"))
        with self._cond:
            self.rules = parsed
        return {k: v.fields for k, v in parsed.items()}

    def configure(self, **changes: Any) -> None:
        """Change delivery settings (url, backoff_base, backoff_max, horizon, timeout, verify, batch_window)."""
        for key, value in changes.items():
            if not hasattr(self.settings, key) or key == "extra":
                raise ValueError(f"unknown outbound setting {key!r}")
            setattr(self.settings, key, value)
        with self._cond:
            self._cond.notify_all()

    def status(self) -> dict[str, Any]:
        """Queue size, counters, rules and the recent delivery log."""
        with self._cond:
            return {"url": self.settings.url, "pending": len(self.pending), **self.counts,
                    "rules": {k: v.fields for k, v in self.rules.items()}, "log": list(self.log)[-200:]}

    def clear(self) -> None:
        """Drop the queue, the rules and the log."""
        with self._cond:
            self.pending.clear()
            self.rules.clear()
            self.log.clear()
            self.counts = dict.fromkeys(self.counts, 0)

    # -- queueing --------------------------------------------------------------------------------
    def on_change(self, kind: str, name: str, rec: Record) -> None:
        """Store listener: queue a notification for creates and updates that match a rule."""
        if kind not in ("created", "updated") or not self.settings.url or rec.get("IsDeleted"):
            return
        with self._cond:
            if name not in self.rules:
                return
            now = time.monotonic()
            self.pending.append(Notification(self.org.ids.for_object("Notification"), name, rec["Id"], now, now))
            self.counts["queued"] += 1
            self._cond.notify_all()

    # -- the thread ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the sender thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sf-outbound", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the sender thread and wait for it."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.settings.timeout + 1))
            self._thread = None
        self._http.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch:
                self._deliver(batch)

    def _next_batch(self) -> list[Notification]:
        with self._cond:
            now = time.monotonic()
            horizon = self.settings.horizon
            for n in [n for n in self.pending if now - n.enqueued > horizon]:
                self.pending.remove(n)
                self.counts["dropped"] += 1
                self.log.append({"at": _iso(), "object": n.object, "notification_ids": [n.id], "dropped": True})
            due = [n for n in self.pending if n.due <= now]
            if not due or not self.settings.url:
                wait = min((n.due for n in self.pending), default=now + 1.0) - now
                self._cond.wait(timeout=max(0.01, min(wait, 1.0)))
                return []
            if self.settings.batch_window and now - min(n.due for n in due) < self.settings.batch_window:
                self._cond.wait(timeout=self.settings.batch_window)  # let a burst gather into one message
                return []
            first = due[0].object
            return [n for n in due if n.object == first][:MAX_PER_MESSAGE]

    def _deliver(self, batch: list[Notification]) -> None:
        rule = self.rules.get(batch[0].object)
        if rule is None:
            with self._cond:
                for n in batch:
                    self.pending.remove(n)
            return
        body = self.message(batch, rule)
        status: int | None = None
        error = None
        acked = False
        try:
            resp = self._http.post(self.settings.url or "", data=body, timeout=self.settings.timeout,
                                   verify=self.settings.verify,
                                   headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""',
                                            "User-Agent": "Salesforce - OM"})
            status = resp.status_code
            acked = status == 200 and is_ack(resp.content)
            if not acked:
                error = f"no acknowledgement (HTTP {status})"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        with self._cond:
            self.counts["attempts"] += 1
            attempt = batch[0].attempts + 1
            self.log.append({"at": _iso(), "object": batch[0].object, "notification_ids": [n.id for n in batch],
                             "record_ids": [n.record_id for n in batch], "attempt": attempt, "status": status,
                             "acked": acked, "error": error})
            now = time.monotonic()
            for n in batch:
                if acked:
                    if n in self.pending:
                        self.pending.remove(n)
                    self.counts["delivered"] += 1
                else:
                    n.attempts += 1
                    n.due = now + min(self.settings.backoff_base * 2 ** (n.attempts - 1), self.settings.backoff_max)
            if not acked:
                self.counts["failed_attempts"] += 1

    def message(self, batch: list[Notification], rule: Rule) -> bytes:
        """The SOAP notifications message, with each record's current values."""
        org_id = self.org.org_id
        base = self.instance_url
        session = (f"<SessionId>{html.escape(self._session_factory())}</SessionId>"
                   if rule.session_id and self._session_factory else '<SessionId xsi:nil="true"/>')
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
            f'<soapenv:Body><notifications xmlns="{OUTBOUND_NS}">',
            f"<OrganizationId>{org_id}</OrganizationId><ActionId>{rule.action_id}</ActionId>{session}",
            f"<EnterpriseUrl>{base}/services/Soap/c/59.0/{org_id}</EnterpriseUrl>",
            f"<PartnerUrl>{base}/services/Soap/u/59.0/{org_id}</PartnerUrl>",
        ]
        obj = self.org.schema.get(batch[0].object)
        for n in batch:
            rec = self.org.get(n.record_id) or {"Id": n.record_id}
            parts.append(f"<Notification><Id>{n.id}</Id>"
                         f'<sObject xsi:type="sf:{n.object}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">')
            for name in rule.fields:
                value = rec.get(name)
                if value is None:
                    continue
                fdef = obj.field(name) if obj else None
                parts.append(f"<sf:{name}>{html.escape(_soap_value(value, fdef.type if fdef else ''))}</sf:{name}>")
            parts.append("</sObject></Notification>")
        parts.append("</notifications></soapenv:Body></soapenv:Envelope>")
        return "".join(parts).encode()


def is_ack(content: bytes) -> bool:
    """True for the exact acknowledgement: notificationsResponse/Ack = true in the outbound namespace."""
    try:
        root = ElementTree.fromstring(content)
    except Exception:  # any parse failure is "not acknowledged"
        return False
    for resp in root.iter(f"{{{OUTBOUND_NS}}}notificationsResponse"):
        ack = resp.find(f"{{{OUTBOUND_NS}}}Ack")
        if ack is not None and (ack.text or "").strip() == "true":
            return True
    return False


def _soap_value(value: object, type_: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if type_ == "datetime" and isinstance(value, str):
        return value[:-5] + "Z"
    return str(value)


def _iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
