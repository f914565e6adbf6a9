"""Adding a connection from the admin app: HubSpot private-app token, Salesforce JWT bearer, and both
OAuth flows (redirect to the CRM's consent page, then trade the code for tokens at the callback).

A pending OAuth install (client secret included) waits in Redis, encrypted, under its `state`, for
ten minutes; the callback only completes it for the user who started it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters.base import ConnectionInfo
from adapters.hubspot import settings as hs
from adapters.salesforce import settings as S
from connector.config import Settings
from connector.connections import create_connection
from connector.errors import RapportError
from connector.model import Connection
from connector.queues import redis_for
from connector.vault import vault_for
from connector.web.services.common import Invalid
from connector.web.services.mappings import INTERACTIVE

_C = Connection.__table__  # type: ignore[attr-defined]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
PENDING_TTL_S = 600
CALLBACK_PATH = "/oauth/callback/{kind}"


def redirect_uri(settings: Settings, kind: str) -> str:
    """The callback URL to register in the CRM app (built on RAPPORT_PUBLIC_URL)."""
    return settings.public_url.rstrip("/") + CALLBACK_PATH.format(kind=kind)


def _check_name(engine: Engine, name: str, errors: dict[str, str]) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        errors["name"] = "use 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        return name
    with engine.connect() as conn:
        if conn.execute(sa.select(_C.c.id).where(_C.c.name == name)).first() is not None:
            errors["name"] = f"the name {name!r} is taken; choose another"
    return name


def _url(value: str, field: str, errors: dict[str, str], *, https: bool) -> str:
    value = (value or "").strip().rstrip("/")
    parts = urlsplit(value)
    allowed = ("https",) if https else ("http", "https")
    if parts.scheme not in allowed or not parts.netloc:
        errors[field] = "give an https:// URL" if https else "give an http(s):// URL"
    return value


def _required(form: dict[str, Any], field: str, errors: dict[str, str], what: str) -> str:
    value = str(form.get(field) or "").strip()
    if not value:
        errors[field] = f"enter the {what}"
    return value


def _raise(errors: dict[str, str]) -> None:
    if errors:
        raise Invalid("the connection was not added: fix the fields marked", errors)


# --- HubSpot private app ------------------------------------------------------------------------


def add_hubspot_token(engine: Engine, settings: Settings, workspace: str, form: dict[str, Any]) -> int:
    """Check a private-app token with one read, then store the connection."""
    from adapters.hubspot.client import HubSpotClient

    errors: dict[str, str] = {}
    name = _check_name(engine, str(form.get("name") or ""), errors)
    token = _required(form, "token", errors, "private-app access token")
    api_base = _url(str(form.get("api_base") or hs.API_BASE), "api_base", errors, https=False)
    portal = str(form.get("portal_id") or "").strip()
    if portal and not portal.isdigit():
        errors["portal_id"] = "the portal (hub) id is a number, shown in HubSpot's account menu"
    _raise(errors)
    instance = None if api_base == hs.API_BASE else api_base
    secrets_ = {"access_token": token} | ({"app_secret": form["app_secret"].strip()} if form.get("app_secret") else {})
    client = HubSpotClient(ConnectionInfo(id=0, name=name, kind=hs.CRM, instance_url=instance, options=INTERACTIVE),
                           secrets_)
    try:
        client.call("crm.objects.basic_api", "get_page", object=hs.COMPANIES, object_type=hs.COMPANIES, limit=1)
    except RapportError as exc:
        raise Invalid("HubSpot did not accept this token", {"token": exc.message}) from None
    return create_connection(engine, settings, kind=hs.CRM, name=name, secrets=client.secrets, instance_url=instance,
                             external_org_id=portal or None, options={"auth": hs.auth_kind(secrets_)},
                             workspace=workspace)


# --- Salesforce JWT bearer ----------------------------------------------------------------------


def add_salesforce_jwt(engine: Engine, settings: Settings, workspace: str, form: dict[str, Any]) -> int:
    """Sign in once with the JWT bearer grant (learning the org id), then store the connection."""
    from adapters.salesforce import SalesforceAdapter

    errors: dict[str, str] = {}
    name = _check_name(engine, str(form.get("name") or ""), errors)
    client_id = _required(form, "client_id", errors, "connected app's consumer key")
    username = _required(form, "username", errors, "integration user's username")
    key = _required(form, "private_key", errors, "PEM private key of the connected app's certificate")
    if key and "PRIVATE KEY" not in key:
        errors["private_key"] = "paste the whole PEM key, from -----BEGIN PRIVATE KEY----- to its END line"
    login_url = _url(str(form.get("login_url") or S.DEFAULT_LOGIN_URL), "login_url", errors, https=True)
    options = _sf_options(form, login_url, errors)
    _raise(errors)
    secrets_ = {"client_id": client_id, "username": username, "private_key": key}
    adapter = SalesforceAdapter(ConnectionInfo(0, name, S.CRM, None, None, options), secrets_)
    try:
        token = adapter.client.refresh()
    except RapportError as exc:
        raise Invalid("Salesforce refused the JWT sign-in", {"private_key": str(exc)}) from None
    return create_connection(engine, settings, kind=S.CRM, name=name, secrets=adapter.secrets,
                             instance_url=adapter.client.instance_url, external_org_id=token.organization_id,
                             options=options | {"auth": "jwt"}, workspace=workspace)


def _sf_options(form: dict[str, Any], login_url: str, errors: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {"login_url": login_url}
    bundle = str(form.get("ca_bundle") or "").strip()
    if bundle:
        from pathlib import Path

        if not Path(bundle).is_file():
            errors["ca_bundle"] = "no such file on the server; give the path of a PEM CA bundle, or leave it empty"
        options["ca_bundle"] = bundle
    return options


# --- OAuth ---------------------------------------------------------------------------------------


def _pending_key(state: str) -> str:
    return f"rapport:oauth:{hashlib.sha256(state.encode()).hexdigest()}"


def _authorize_url(kind: str, pending: dict[str, Any]) -> str:
    if kind == hs.CRM:
        base = pending["api_base"]
        page = hs.AUTHORIZE_URL if base == hs.API_BASE else base + urlsplit(hs.AUTHORIZE_URL).path
        query = {"client_id": pending["client_id"], "redirect_uri": pending["redirect_uri"],
                 "scope": " ".join(hs.OAUTH_SCOPES), "state": pending["state"]}
        return page + "?" + urlencode(query)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(pending["code_verifier"].encode()).digest()).rstrip(b"=")
    query = {"response_type": "code", "client_id": pending["client_id"], "redirect_uri": pending["redirect_uri"],
             "state": pending["state"], "scope": S.OAUTH_SCOPES, "code_challenge": challenge.decode(),
             "code_challenge_method": "S256"}
    return pending["login_url"] + S.AUTHORIZE_PATH + "?" + urlencode(query)


def start_oauth(engine: Engine, settings: Settings, workspace: str, user_id: int, kind: str,
                form: dict[str, Any]) -> str:
    """Remember the install and return the CRM consent page to send the browser to."""
    errors: dict[str, str] = {}
    name = _check_name(engine, str(form.get("name") or ""), errors)
    client_id = _required(form, "client_id", errors, "app's client id")
    client_secret = _required(form, "client_secret", errors, "app's client secret")
    pending: dict[str, Any] = {"kind": kind, "name": name, "client_id": client_id, "client_secret": client_secret,
                               "workspace": workspace, "user_id": user_id,
                               "redirect_uri": redirect_uri(settings, kind), "state": secrets.token_urlsafe(24)}
    if kind == hs.CRM:
        pending["api_base"] = _url(str(form.get("api_base") or hs.API_BASE), "api_base", errors, https=False)
    elif kind == S.CRM:
        pending["login_url"] = _url(str(form.get("login_url") or S.DEFAULT_LOGIN_URL), "login_url", errors, https=True)
        pending["options"] = _sf_options(form, pending["login_url"], errors)
        pending["code_verifier"] = secrets.token_urlsafe(48)
    else:
        errors["kind"] = "choose salesforce or hubspot"
    _raise(errors)
    redis_for(settings).set(_pending_key(pending["state"]), vault_for(settings).encrypt(pending), ex=PENDING_TTL_S)
    return _authorize_url(kind, pending)


def finish_oauth(engine: Engine, settings: Settings, user_id: int, kind: str, args: dict[str, str]) -> int:
    """Trade the callback's code for tokens and store the connection; Invalid says what went wrong."""
    state = args.get("state") or ""
    token = redis_for(settings).getdel(_pending_key(state)) if state else None
    if not token:
        raise Invalid("this sign-in link expired or was already used; start adding the connection again")
    pending: dict[str, Any] = vault_for(settings).decrypt(token.decode() if isinstance(token, bytes) else token)
    if pending.get("user_id") != user_id or pending.get("kind") != kind:
        raise Invalid("this sign-in was started by someone else; start adding the connection again")
    if args.get("error"):
        detail = args.get("error_description") or args["error"]
        raise Invalid(f"the CRM did not grant access ({detail}); nothing was added")
    code = args.get("code") or ""
    if not code:
        raise Invalid("the CRM sent no authorization code back; start adding the connection again")
    try:
        return _finish_hubspot(engine, settings, pending, code) if kind == hs.CRM else \
            _finish_salesforce(engine, settings, pending, code)
    except RapportError as exc:
        raise Invalid(f"the CRM refused the authorization code: {exc}") from None


def _finish_hubspot(engine: Engine, settings: Settings, pending: dict[str, Any], code: str) -> int:
    from adapters.hubspot.client import HubSpotClient

    instance = None if pending["api_base"] == hs.API_BASE else pending["api_base"]
    client = HubSpotClient(ConnectionInfo(id=0, name=pending["name"], kind=hs.CRM, instance_url=instance),
                           {"client_id": pending["client_id"], "client_secret": pending["client_secret"]})
    client.authorize(code, pending["redirect_uri"])
    portal = client.portal_id()
    client.call("crm.objects.basic_api", "get_page", object=hs.COMPANIES, object_type=hs.COMPANIES, limit=1)
    return create_connection(engine, settings, kind=hs.CRM, name=pending["name"], secrets=client.secrets,
                             instance_url=instance, external_org_id=portal, options={"auth": "oauth"},
                             workspace=pending["workspace"])


def _finish_salesforce(engine: Engine, settings: Settings, pending: dict[str, Any], code: str) -> int:
    from adapters.salesforce import auth as sf_auth
    from adapters.salesforce.client import SalesforceClient

    options = pending["options"]
    client = SalesforceClient(None, {}, login_url=pending["login_url"], ca_bundle=options.get("ca_bundle"))
    grant = {"code": code, "redirect_uri": pending["redirect_uri"], "client_id": pending["client_id"],
             "client_secret": pending["client_secret"], "code_verifier": pending["code_verifier"]}
    token = sf_auth.request_token(client.session, "authorization_code", grant, pending["login_url"])
    if not token.refresh_token:
        raise Invalid("Salesforce granted no refresh token: add the refresh_token scope to the connected app")
    secrets_ = {"client_id": pending["client_id"], "client_secret": pending["client_secret"],
                "refresh_token": token.refresh_token, "access_token": token.access_token,
                "instance_url": token.instance_url}
    return create_connection(engine, settings, kind=S.CRM, name=pending["name"], secrets=secrets_,
                             instance_url=token.instance_url, external_org_id=token.organization_id,
                             options=options | {"auth": "oauth"}, workspace=pending["workspace"])
