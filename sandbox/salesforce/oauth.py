"""The connected app and the org's sessions: OAuth 2.0 token endpoint (password, refresh_token,
authorization_code with a click-through authorize page, JWT bearer verified against the registered
certificate), the SOAP login, and access tokens that expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import jwt
from cryptography import x509
from defusedxml import ElementTree
from werkzeug.wrappers import Request, Response

from sandbox.salesforce.http import json_response, route

if TYPE_CHECKING:
    from sandbox.salesforce.instance import Instance

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
CODE_SECONDS = 15 * 60


@dataclass
class Session:
    """An access token's owner and expiry (wall-clock seconds)."""

    user_id: str
    client_id: str
    expires_at: float


class OAuthError(Exception):
    """A token-endpoint failure: HTTP 400 with {error, error_description}."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class Auth:
    """The connected app (client id/secret, certificate) and the sessions it issued."""

    def __init__(self, org_id: str, user_id: str, username: str, *, token_ttl: float = 7200.0) -> None:
        self.org_id = org_id
        self.user_id = user_id
        self.username = username
        self.password = "Sandbox-" + secrets.token_urlsafe(9)
        self.security_token = secrets.token_urlsafe(18)[:24]
        self.client_id = "3MVG9" + secrets.token_urlsafe(60).replace("-", "A").replace("_", "B")[:80]
        self.client_secret = str(secrets.randbelow(10**19)).rjust(19, "1")
        self.token_ttl = token_ttl
        self.instance_url = ""
        self.callback_urls: list[str] = []
        self.certificates: list[Any] = []
        self._sessions: dict[str, Session] = {}
        self._refresh: dict[str, tuple[str, str]] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # -- certificates and sessions ---------------------------------------------------------------
    def register_certificate(self, pem: bytes) -> None:
        """Upload a certificate (PEM) to the connected app for the JWT bearer flow."""
        self.certificates.append(x509.load_pem_x509_certificate(pem).public_key())

    def session(self, token: str) -> Session | None:
        """The live session for an access token, or None when unknown or expired."""
        with self._lock:
            sess = self._sessions.get(token)
            if sess is None:
                return None
            if time.time() >= sess.expires_at:
                del self._sessions[token]
                return None
            return sess

    def new_session(self, user_id: str | None = None, client_id: str | None = None) -> str:
        """Mint an access token (00D...!...) valid for token_ttl seconds."""
        token = f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
        with self._lock:
            self._sessions[token] = Session(user_id or self.user_id, client_id or self.client_id,
                                            time.time() + self.token_ttl)
        return token

    def expire_all(self) -> int:
        """End every session now (refresh tokens stay valid); returns how many ended."""
        with self._lock:
            n = len(self._sessions)
            self._sessions.clear()
            return n

    def revoke(self, token: str) -> None:
        """Revoke an access or refresh token."""
        with self._lock:
            self._sessions.pop(token, None)
            self._refresh.pop(token, None)

    def identity_url(self, user_id: str) -> str:
        """The `id` URL of a token response."""
        return f"{self.instance_url}/id/{self.org_id}/{user_id}"

    def token_response(self, user_id: str, *, refresh: bool, scope: str | None) -> dict[str, Any]:
        """The JSON a successful grant returns."""
        token = self.new_session(user_id)
        issued = str(int(time.time() * 1000))
        ident = self.identity_url(user_id)
        sig = base64.b64encode(hmac.new(self.client_secret.encode(), (ident + issued).encode(), hashlib.sha256).digest())
        body: dict[str, Any] = {"access_token": token}
        if refresh:
            rt = "5Aep861" + secrets.token_urlsafe(60)
            with self._lock:
                self._refresh[rt] = (user_id, self.client_id)
            body["refresh_token"] = rt
        body["signature"] = sig.decode()
        if scope:
            body["scope"] = scope
        body.update({"instance_url": self.instance_url, "id": ident, "token_type": "Bearer", "issued_at": issued})
        return body

    # -- grants ---------------------------------------------------------------------------------
    def client(self, form: dict[str, str], *, secret_required: bool) -> None:
        """Check client_id (and client_secret when given or required)."""
        if form.get("client_id") != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        secret = form.get("client_secret")
        if (secret_required or secret) and secret != self.client_secret:
            raise OAuthError("invalid_client", "invalid client credentials")

    def grant(self, form: dict[str, str]) -> dict[str, Any]:
        """Run one token request."""
        grant = form.get("grant_type", "")
        if grant == "password":
            self.client(form, secret_required=True)
            password = form.get("password", "")
            if form.get("username") != self.username or password not in (self.password, self.password + self.security_token):
                raise OAuthError("invalid_grant", "authentication failure")
            return self.token_response(self.user_id, refresh=False, scope=None)
        if grant == "refresh_token":
            self.client(form, secret_required=False)
            with self._lock:
                owner = self._refresh.get(form.get("refresh_token", ""))
            if owner is None:
                raise OAuthError("invalid_grant", "expired access/refresh token")
            return self.token_response(owner[0], refresh=False, scope="api refresh_token")
        if grant == "authorization_code":
            return self.exchange_code(form)
        if grant == JWT_GRANT:
            return self.jwt_bearer(form.get("assertion", ""))
        raise OAuthError("unsupported_grant_type", "grant type not supported")

    def exchange_code(self, form: dict[str, str]) -> dict[str, Any]:
        """authorization_code: single use, same redirect_uri, client secret or PKCE verifier."""
        if form.get("client_id") != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        with self._lock:
            entry = self._codes.pop(form.get("code", ""), None)
        if entry is None or time.time() > entry["expires"]:
            raise OAuthError("invalid_grant", "invalid authorization code")
        if form.get("redirect_uri") != entry["redirect_uri"]:
            raise OAuthError("redirect_uri_mismatch", "redirect_uri must match configuration")
        challenge = entry.get("code_challenge")
        if challenge:
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if digest != challenge:
                raise OAuthError("invalid_grant", "invalid code verifier")
            if form.get("client_secret"):
                self.client(form, secret_required=True)
        else:
            self.client(form, secret_required=True)
        return self.token_response(self.user_id, refresh=True, scope="api refresh_token")

    def jwt_bearer(self, assertion: str) -> dict[str, Any]:
        """JWT bearer: RS256 signed by the registered certificate's key; iss, sub, aud, exp checked."""
        claims = None
        for key in self.certificates:
            try:
                claims = jwt.decode(assertion, key=key, algorithms=["RS256"],
                                    options={"verify_exp": False, "verify_aud": False, "verify_iat": False,
                                             "verify_nbf": False})
                break
            except jwt.InvalidTokenError:
                continue
        if claims is None:
            raise OAuthError("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if claims.get("aud") not in (*LOGIN_AUDIENCES, self.instance_url):
            raise OAuthError("invalid_grant", "audience is invalid")
        try:
            exp = float(claims["exp"])  # simple-salesforce sends exp as a string
        except (KeyError, TypeError, ValueError):
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if exp < time.time():
            raise OAuthError("invalid_grant", "expired authorization code")
        if claims.get("sub") != self.username:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        return self.token_response(self.user_id, refresh=False, scope="api")

    def new_code(self, redirect_uri: str, challenge: str | None) -> str:
        """An authorization code for the authorize page's Allow button."""
        code = "aPrx" + secrets.token_urlsafe(48)
        with self._lock:
            self._codes[code] = {"redirect_uri": redirect_uri, "code_challenge": challenge,
                                 "expires": time.time() + CODE_SECONDS}
        return code

    def redirect_allowed(self, uri: str) -> bool:
        """A redirect URI is allowed when it is https/http and matches a callback URL (if any are set)."""
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        return not self.callback_urls or uri in self.callback_urls


# -- endpoints --------------------------------------------------------------------------------------
@route("/services/oauth2/token", ("POST",), kind="oauth")
def token(sb: Instance, request: Request) -> Response:
    """POST /services/oauth2/token (form-encoded)."""
    try:
        return json_response(sb.auth.grant(request.form.to_dict()))
    except OAuthError as exc:
        return json_response({"error": exc.error, "error_description": exc.description}, exc.status)


_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Allow Access?</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>Allow Access?</h1>
<p><b>{app}</b> is asking to access your Salesforce data as <b>{user}</b>:</p>
<ul><li>Access and manage your data (api)</li><li>Perform requests at any time (refresh_token, offline_access)</li></ul>
<form method="post" action="/services/oauth2/authorize">{hidden}
<button type="submit" name="decision" value="allow" id="oaapprove">Allow</button>
<button type="submit" name="decision" value="deny" id="oadeny">Deny</button>
</form></body></html>"""


@route("/services/oauth2/authorize", ("GET", "POST"), kind="oauth")
def authorize(sb: Instance, request: Request) -> Response:
    """The consent page (GET) and the decision (POST) that redirects back with ?code= and state."""
    params = request.values.to_dict()
    if params.get("client_id") != sb.auth.client_id:
        return Response("error=invalid_client_id: client identifier invalid", 400, content_type="text/plain")
    redirect_uri = params.get("redirect_uri", "")
    if not sb.auth.redirect_allowed(redirect_uri):
        return Response("error=redirect_uri_mismatch: redirect_uri must match configuration", 400,
                        content_type="text/plain")
    state = {"state": params["state"]} if "state" in params else {}
    sep = "&" if "?" in redirect_uri else "?"
    if params.get("response_type") != "code":
        return _redirect(redirect_uri + sep + urlencode({"error": "unsupported_response_type",
                                                         "error_description": "response type not supported", **state}))
    if request.method == "GET":
        keep = ("response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method", "scope")
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(params[k])}">' for k in keep if k in params
        )
        page = _PAGE.format(app="Rapport", user=html.escape(sb.auth.username), hidden=hidden)
        return Response(page, content_type="text/html;charset=UTF-8")
    if params.get("decision") != "allow":
        return _redirect(redirect_uri + sep + urlencode({"error": "access_denied",
                                                         "error_description": "end-user denied authorization", **state}))
    code = sb.auth.new_code(redirect_uri, params.get("code_challenge"))
    return _redirect(redirect_uri + sep + urlencode({"code": code, **state}))


def _redirect(location: str) -> Response:
    return Response("", 302, headers={"Location": location})


@route("/services/oauth2/revoke", ("POST", "GET"), kind="oauth")
def revoke(sb: Instance, request: Request) -> Response:
    """Revoke a token (always 200, as the platform does for unknown tokens too)."""
    sb.auth.revoke(request.values.get("token", ""))
    return Response("", 200)


@route("/services/oauth2/userinfo", ("GET",), kind="bearer")
def userinfo(sb: Instance, request: Request) -> Response:
    """OpenID userinfo for the session's user."""
    return json_response(_identity(sb, request.environ["sf.session"].user_id))


@route("/id/<org_id>/<user_id>", ("GET",), kind="bearer")
def identity(sb: Instance, request: Request, org_id: str, user_id: str) -> Response:
    """The identity URL returned as `id` by the token endpoint."""
    if org_id != sb.org.org_id or sb.org.get(user_id) is None:
        return Response("Bad_Id", 404, content_type="text/plain")
    return json_response(_identity(sb, user_id))


def _identity(sb: Instance, user_id: str) -> dict[str, Any]:
    user = sb.org.get(user_id) or {}
    return {"sub": sb.auth.identity_url(user_id), "user_id": user_id, "organization_id": sb.org.org_id,
            "preferred_username": user.get("Username"), "email": user.get("Email"), "name": user.get("Name"),
            "urls": {"rest": f"{sb.auth.instance_url}/services/data/v{{version}}/"}}


_ENVELOPE = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
             'xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
             "<soapenv:Body>{}</soapenv:Body></soapenv:Envelope>")
_FAULT = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
          'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
          "<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{code}: {msg}</faultstring>"
          '<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>'
          "<sf:exceptionMessage>{msg}</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>")


@route("/services/Soap/u/<version>", ("POST",), kind="oauth")
def soap_login(sb: Instance, request: Request, version: str) -> Response:
    """Partner SOAP login(username, password[+security token])."""
    try:
        root = ElementTree.fromstring(request.get_data())
    except Exception:  # defusedxml raises several parse error types
        return _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    values = {el.tag.rsplit("}", 1)[-1]: (el.text or "") for el in root.iter()}
    auth = sb.auth
    password = values.get("password", "")
    if values.get("username") != auth.username or password not in (auth.password, auth.password + auth.security_token):
        return _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    token = auth.new_session()
    user = sb.org.get(auth.user_id) or {}
    result = (
        f"<loginResponse><result><metadataServerUrl>{auth.instance_url}/services/Soap/m/{version}/{sb.org.org_id}</metadataServerUrl>"
        f"<passwordExpired>false</passwordExpired><sandbox>true</sandbox>"
        f"<serverUrl>{auth.instance_url}/services/Soap/u/{version}/{sb.org.org_id}</serverUrl>"
        f"<sessionId>{token}</sessionId><userId>{auth.user_id}</userId><userInfo>"
        f"<organizationId>{sb.org.org_id}</organizationId><organizationName>Rapport Sandbox</organizationName>"
        f"<sessionSecondsValid>{int(auth.token_ttl)}</sessionSecondsValid>"
        f"<userEmail>{html.escape(user.get('Email') or '')}</userEmail><userFullName>{html.escape(user.get('Name') or '')}</userFullName>"
        f"<userId>{auth.user_id}</userId><userName>{html.escape(auth.username)}</userName></userInfo></result></loginResponse>"
    )
    return Response(_ENVELOPE.format(result), content_type="text/xml;charset=UTF-8")


def _soap_fault(code: str, message: str) -> Response:
    return Response(_FAULT.format(code=code, msg=html.escape(message)), 500, content_type="text/xml;charset=UTF-8")
