"""The sandbox as an HTTPS server: the WSGI app (routing, bearer auth, API usage, faults,
Sforce-Limit-Info) and `SalesforceSandbox`, which starts it in a background thread on a free port
with a private CA and certificate for 127.0.0.1.
"""

from __future__ import annotations

import logging
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from sandbox.salesforce import bulk2, composite, hooks, oauth, rest, tooling  # noqa: F401  (register routes)
from sandbox.salesforce.faults import ERROR_BODIES
from sandbox.salesforce.http import NOT_FOUND, ROUTES, VERSIONS, ApiError, VersionConverter, json_response
from sandbox.salesforce.instance import Instance, WorldSpec
from sandbox.salesforce.outbound import Settings

log = logging.getLogger(__name__)


class App:
    """WSGI application over one Instance."""

    def __init__(self, sb: Instance) -> None:
        self.sb = sb
        self.url_map = Map([Rule(r.path, methods=list(r.methods), endpoint=i) for i, r in enumerate(ROUTES)],
                           converters={"version": VersionConverter}, strict_slashes=False, merge_slashes=False)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except ApiError as exc:
            response = exc.response()
        except HTTPException as exc:
            response = exc.get_response()
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route, authenticate, count, inject faults, call the handler."""
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            rule, args = adapter.match(return_rule=True)
        except NotFound:
            if request.path.startswith("/services/"):
                raise ApiError(404, "NOT_FOUND", NOT_FOUND) from None
            return Response("Not found", 404, content_type="text/plain")
        except MethodNotAllowed as exc:
            allowed = ",".join(sorted(exc.valid_methods or []))
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}") from None
        route = ROUTES[int(rule.endpoint)]
        sb = self.sb
        sb.stats.count(request.method, rule.rule)
        if route.kind in ("hook", "oauth", "open"):
            return route.handler(sb, request, **args)
        if "version" in args and args["version"] not in VERSIONS:
            raise ApiError(404, "NOT_FOUND", NOT_FOUND)
        data = route.kind == "data"
        decision = sb.faults.decide(request.method, request.path) if data else None
        if decision and decision.delay:
            time.sleep(decision.delay)
        if decision and decision.status:
            body = ERROR_BODIES.get(decision.status, {"errorCode": "UNKNOWN_EXCEPTION", "message": "Injected failure"})
            return json_response([body], decision.status, {"Sforce-Limit-Info": sb.usage.header()})
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        session = sb.auth.session(token.strip()) if scheme.lower() in ("bearer", "oauth") else None
        if session is None:
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        request.environ["sf.session"] = session
        if data and not sb.usage.consume():
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        try:
            response = route.handler(sb, request, **args)
        except ApiError as exc:
            response = exc.response()
        except Exception:
            log.exception("sandbox handler failed for %s %s", request.method, request.path)
            response = json_response([ERROR_BODIES[500]], 500)
        if data:
            response.headers["Sforce-Limit-Info"] = sb.usage.header()
            if decision and decision.truncate and response.data:
                response.set_data(response.get_data()[: max(1, len(response.get_data()) // 2)])
        return response


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No per-request log lines (they cost time on large syncs)."""


class SalesforceSandbox:
    """A Salesforce org over HTTPS on 127.0.0.1, seeded from the synthetic world.

    `start()` returns self; `info` is what a client needs; `org` is the live store for assertions.
    """

    def __init__(self, size: str = "small", seed: int = 0, *, accounts: int | None = None,
                 bundles: Callable[[], Iterable[Any]] | None = None, owners: Callable[[], Iterable[Any]] | None = None,
                 host: str = "127.0.0.1", port: int = 0, webhook_url: str | None = None, token_ttl: float = 7200.0,
                 daily_limit: int = 100_000, outbound: Settings | None = None) -> None:
        self.spec = WorldSpec(size, seed, accounts, bundles, owners)
        self.host, self.port = host, port
        self.token_ttl, self.daily_limit = token_ttl, daily_limit
        self.outbound_settings = outbound or Settings()
        if webhook_url:
            self.outbound_settings.url = webhook_url
        self.instance: Instance | None = None
        self.info: dict[str, Any] = {}
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._dir: Path | None = None

    @property
    def sb(self) -> Instance:
        """The running instance (after start)."""
        if self.instance is None:
            raise RuntimeError("the sandbox is not started: call start() first")
        return self.instance

    @property
    def org(self):  # type: ignore[no-untyped-def]
        """The org's record store."""
        return self.sb.org

    def start(self) -> SalesforceSandbox:
        """Load the world, create the CA and certificate, serve HTTPS in a thread; returns self."""
        self.instance = Instance(self.spec, token_ttl=self.token_ttl, daily_limit=self.daily_limit,
                                 outbound=self.outbound_settings)
        self._dir = Path(tempfile.mkdtemp(prefix="rapport-sf-sandbox-"))
        ca = trustme.CA(organization_name="Rapport Sandbox CA")
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(ctx)
        ca_path = self._dir / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        self._server = make_server(self.host, self.port, App(self.instance), threaded=True, ssl_context=ctx,
                                   request_handler=_QuietHandler)
        url = f"https://127.0.0.1:{self._server.server_port}"
        self.instance.set_url(url)
        key_path = self._jwt_credentials(self._dir)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sf-sandbox", daemon=True)
        self._thread.start()
        self.instance.outbound.start()
        auth = self.instance.auth
        self.info = {
            "instance_url": url, "access_token": auth.new_session(), "ca_bundle": str(ca_path),
            "client_id": auth.client_id, "client_secret": auth.client_secret, "username": auth.username,
            "password": auth.password, "organization_id": self.instance.org.org_id,
            "security_token": auth.security_token, "user_id": auth.user_id, "jwt_private_key": str(key_path),
            "token_url": f"{url}/services/oauth2/token", "authorize_url": f"{url}/services/oauth2/authorize",
        }
        return self

    def _jwt_credentials(self, folder: Path) -> Path:
        """A key pair for the JWT bearer flow: the certificate is registered, the key handed out."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rapport-jwt")])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))
        self.sb.auth.register_certificate(cert.public_bytes(serialization.Encoding.PEM))
        path = folder / "jwt-key.pem"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return path

    def stop(self) -> None:
        """Stop the outbound sender and the server; remove the CA and key files."""
        if self.instance is not None:
            self.instance.outbound.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def session(self) -> requests.Session:
        """A requests session that trusts the sandbox's CA."""
        sess = requests.Session()
        sess.verify = self.info["ca_bundle"]
        # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the environment would override session.verify.
        sess.trust_env = False
        return sess

    def hook(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call a /__sandbox__/ hook and return its JSON."""
        with self.session() as sess:
            resp = sess.request(method, f"{self.info['instance_url']}/__sandbox__/{path.lstrip('/')}", json=body, timeout=60)
        resp.raise_for_status()
        return resp.json()

    def __enter__(self) -> SalesforceSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
