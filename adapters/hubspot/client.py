"""HTTP to HubSpot through hubspot-api-client: one call wrapper and one paging loop.

Every call spends the shared budget first, is counted, refreshes OAuth tokens when they expire,
backs off on 429 as the named policy asks, retries 5xx a bounded number of times, and maps any
other failure to the connector's errors.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import orjson
import urllib3
from hubspot import HubSpot

from adapters.base import Budget, ConnectionInfo, NoBudget, SecretsSink
from adapters.hubspot import settings as hs
from connector.errors import (
    AuthError,
    BudgetExhausted,
    FatalError,
    RapportError,
    RateLimited,
    RetriableError,
    SkippableError,
    error_for_status,
)

log = logging.getLogger(__name__)
# The limit recorded with a DAILY 429 when HubSpot names none (OAuth apps never get daily headers) and
# the connection sets no daily_limit: Enterprise's allowance, so Rapport's daily share is not checked
# against a smaller allowance than the account may have. The pause itself does not depend on it.
_UNKNOWN_DAILY_LIMIT = 1_000_000


def error_body(exc: Any) -> dict[str, Any]:
    """The JSON body of an ApiException (empty when it is not JSON)."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        return {"message": str(body)[:300]}
    return parsed if isinstance(parsed, dict) else {"message": str(parsed)[:300]}


def _fast_datetimes(api_client: Any) -> None:
    """Parse HubSpot's ISO 8601 stamps with `datetime.fromisoformat`, dateutil only as the fallback.

    The generated client parses every createdAt/updatedAt with dateutil, which is most of the
    time spent reading a page; HubSpot's stamps are plain ISO 8601.
    """
    original = getattr(api_client, "_ApiClient__deserialize_datetime", None)
    if original is None:
        return

    def parse(text: Any) -> Any:
        if isinstance(text, str):
            try:
                return datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                pass
        return original(text)

    api_client._ApiClient__deserialize_datetime = parse


class HubSpotClient:
    """Generated HubSpot APIs behind the budget, the retry policy and the error table."""

    def __init__(
        self,
        info: ConnectionInfo,
        secrets: dict[str, Any],
        *,
        budget: Budget | None = None,
        on_secrets: SecretsSink | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.info = info
        self.api_base = (info.instance_url or hs.API_BASE).rstrip("/")
        self.secrets = dict(secrets)
        self.auth = hs.auth_kind(self.secrets)
        self.budget: Budget = budget or NoBudget()
        self.on_secrets = on_secrets
        self.validate = bool(info.options.get("client_side_validation", False))
        self.backoff_scale = float(info.options.get("backoff_scale", 1.0))
        self.max_retries = int(info.options.get("max_retries", hs.MAX_RETRIES))
        self.api_calls = 0
        self._daily_limit = 0  # the last X-HubSpot-RateLimit-Daily seen
        self._sleep = sleep
        self._clock = clock
        self._apis: dict[str, Any] = {}
        if self.auth == "private_app" and not self.secrets.get("access_token"):  # OAuth may start from a code
            raise AuthError("no HubSpot access token in the connection's secrets", crm=hs.CRM,
                            hint="reconnect with a private-app token or an OAuth refresh token")

    # --- construction -------------------------------------------------------------------------

    def _hubspot(self) -> HubSpot:
        return HubSpot(access_token=self.secrets.get("access_token"), host=self.api_base,
                       client_side_validation=self.validate)

    def api(self, path: str) -> Any:
        """A generated API object by dotted path (e.g. 'crm.contacts.search_api'), kept for reuse."""
        # each discovery access builds a new ApiClient and connection pool: build once per token
        if path not in self._apis:
            obj: Any = self._hubspot()
            for part in path.split("."):
                obj = getattr(obj, part)
            _fast_datetimes(getattr(obj, "api_client", None))
            self._apis[path] = obj
        return self._apis[path]

    # --- OAuth --------------------------------------------------------------------------------

    def _token_fresh(self) -> bool:
        if self.auth != "oauth" or not self.secrets.get("access_token"):
            return self.auth != "oauth"
        expires_at = float(self.secrets.get("expires_at") or 0)
        return expires_at - self._clock() > hs.TOKEN_REFRESH_MARGIN_S

    def refresh_token(self) -> None:
        """Trade the refresh token for a new 30-minute access token and persist it."""
        for key in ("client_id", "client_secret", "refresh_token"):
            if not self.secrets.get(key):
                raise AuthError(f"OAuth connection lacks {key}", crm=hs.CRM,
                                hint="reconnect with `rapport connect hubspot --client-id ... --client-secret ...`")
        self._grant(grant_type="refresh_token", refresh_token=self.secrets["refresh_token"])

    def authorize(self, code: str, redirect_uri: str) -> None:
        """Trade an authorization code (from the install redirect) for tokens."""
        self._grant(grant_type="authorization_code", code=code, redirect_uri=redirect_uri)

    def _grant(self, **form: str) -> None:
        try:
            tokens = self.call("oauth.tokens_api", "create", refresh=False, client_id=self.secrets.get("client_id"),
                               client_secret=self.secrets.get("client_secret"), **form)
        except (FatalError, SkippableError) as exc:
            raise AuthError(f"HubSpot refused the OAuth {form['grant_type']} grant: {exc.message}", crm=hs.CRM,
                            status=exc.status, code=exc.code,
                            hint="check the client id and secret; a dead refresh token means reinstalling the app"
                            ) from None
        self.store_tokens(tokens)

    def portal_id(self) -> str | None:
        """The portal (hub id) an OAuth connection is installed in; None for private-app tokens."""
        if self.auth != "oauth":
            return None
        if not self._token_fresh():
            self.refresh_token()
        info = self.call("oauth.access_tokens_api", "get", refresh=False, token=self.secrets["access_token"])
        return str(info.hub_id)

    def store_tokens(self, tokens: Any) -> None:
        """Keep a token response (access, refresh, expiry) and hand it to the secrets sink."""
        self.secrets["access_token"] = tokens.access_token
        if getattr(tokens, "refresh_token", None):
            self.secrets["refresh_token"] = tokens.refresh_token
        ttl = getattr(tokens, "expires_in", None) or hs.ACCESS_TOKEN_TTL_S
        self.secrets["expires_at"] = self._clock() + float(ttl)
        self._apis.clear()
        if self.on_secrets is not None:
            self.on_secrets(dict(self.secrets))

    # --- the one call wrapper -----------------------------------------------------------------

    def call(self, api: str, method: str, *, bucket: str = "default", object: str | None = None,
             refresh: bool = True, **kwargs: Any) -> Any:
        """Call `api.method(**kwargs)` and return the client's response model."""
        return self.call_json(api, method, bucket=bucket, object=object, refresh=refresh, **kwargs)[0]

    def call_json(self, api: str, method: str, *, bucket: str = "default", object: str | None = None,
                  refresh: bool = True, model: bool = True, **kwargs: Any) -> tuple[Any, Any]:
        """(model, JSON body) of `api.method(**kwargs)`: budget, count, retry by the policy table, map errors.

        The model is what the client's own validation accepted; the JSON is the body exactly as
        HubSpot sent it (what `Change.raw` keeps). Readers that need only the JSON pass
        `model=False`: the client then skips building models (most of a page's reading time),
        unless the connection asks for client-side validation.
        """
        raw = not model and not self.validate
        attempt = 0
        refreshed = False
        while True:
            if refresh and not self._token_fresh():
                self.refresh_token()
                refreshed = True
            self.budget.acquire(bucket)
            self.api_calls += 1
            target = self.api(api)
            try:
                if raw:
                    response = getattr(target, method + "_with_http_info")(**kwargs, _preload_content=False)
                    data, headers = None, response.headers
                    body = self._json(response.data, response.status, api, method, object)
                else:
                    data, _status, headers = getattr(target, method + "_with_http_info")(**kwargs)
                    body = self._body(target, api, method, object)
            except RetriableError as exc:
                self._retry_or_raise(attempt, exc)
                attempt += 1
                continue
            except (ValueError, TypeError) as exc:
                # the client's model validation refused the body: cut off (retry) or not HubSpot's shape
                try:
                    self._body(target, api, method, object)
                except RetriableError as cut:
                    self._retry_or_raise(attempt, cut)
                    attempt += 1
                    continue
                raise FatalError(f"{api}.{method}: the response does not match hubspot-api-client's model: {exc}",
                                 crm=hs.CRM, object=object, url=self.api_base,
                                 hint="the API changed or the server is not HubSpot") from exc
            except urllib3.exceptions.HTTPError as exc:
                self._retry_or_raise(attempt, RetriableError(
                    f"{api}.{method}: connection failed ({type(exc).__name__})", crm=hs.CRM, object=object,
                    url=self.api_base, hint="check that the API base is reachable; the call is retried"))
                attempt += 1
                continue
            except Exception as exc:
                status = getattr(exc, "status", None)
                if not isinstance(status, int):
                    raise
                body = error_body(exc)
                self._observe(getattr(exc, "headers", None),
                              spent=status == 429 and body.get("policyName") == "DAILY")
                if status == 401 and refresh and self.auth == "oauth" and not refreshed:
                    self.refresh_token()
                    refreshed = True
                    continue
                self._retry_or_raise(attempt, self._error(api, method, object, status, body, exc), body, bucket)
                attempt += 1
                continue
            self._observe(headers)
            return data, body

    def _body(self, target: Any, api: str, method: str, object: str | None) -> Any:
        # the generated client turns a cut-off body into an empty model; refuse it instead
        response = getattr(target.api_client, "last_response", None)
        return self._json(getattr(response, "data", None), getattr(response, "status", 200), api, method, object)

    def _json(self, text: Any, status: int, api: str, method: str, object: str | None) -> Any:
        if not text or status == 204:
            return None
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            raise RetriableError(f"{api}.{method}: the response body is not complete JSON", crm=hs.CRM,
                                 object=object, url=self.api_base, hint="the call is retried") from None

    def _error(self, api: str, method: str, object: str | None, status: int, body: dict[str, Any],
               exc: Any) -> RapportError:
        headers = getattr(exc, "headers", None) or {}
        retry_after = headers.get("Retry-After") if hasattr(headers, "get") else None
        message = body.get("message") or getattr(exc, "reason", None) or "no message"
        correlation = body.get("correlationId")
        text = f"{api}.{method}: {message}" + (f" (correlationId {correlation})" if correlation else "")
        code = body.get("category") or body.get("policyName") or body.get("status")
        err = error_for_status(status, text, crm=hs.CRM, object=object, url=self.api_base,
                               code=str(code) if code else None,
                               retry_after=float(retry_after) if retry_after else None)
        if status == 401 and self.auth == "oauth":
            err.hint = "the OAuth grant was revoked or the refresh token is dead; reinstall the app"
        err.body = body  # type: ignore[attr-defined]  # callers read `context.ids` of refused batches
        return err

    def _retry_or_raise(self, attempt: int, err: RapportError, body: dict[str, Any] | None = None,
                        bucket: str = "default") -> None:
        if not isinstance(err, RetriableError) or attempt >= self.max_retries:
            raise err
        if isinstance(err, RateLimited) and err.status == hs.MIGRATION_STATUS:
            wait = err.retry_after or hs.SERVER_ERROR_BACKOFF * 2**attempt
            if wait > hs.LONGEST_INLINE_WAIT_S:
                raise BudgetExhausted(err.message, crm=hs.CRM, object=err.object, status=err.status,
                                      code="MIGRATION_IN_PROGRESS", resume_after=wait,
                                      hint="HubSpot is moving the account's data between data centres; the run "
                                           "resumes when HubSpot's Retry-After says")
        elif isinstance(err, RateLimited):
            policy = (body or {}).get("policyName") or ("SECONDLY" if bucket == "search" else "TEN_SECONDLY_ROLLING")
            if policy == "DAILY":
                raise BudgetExhausted(err.message, crm=hs.CRM, object=err.object, status=429, code="DAILY",
                                      resume_after=hs.BACKOFF_SECONDS["DAILY"],
                                      hint="HubSpot's daily limit for the account is reached")
            wait = err.retry_after or hs.BACKOFF_SECONDS.get(str(policy), hs.BACKOFF_SECONDS["TEN_SECONDLY_ROLLING"])
            wait *= attempt + 1
        elif err.status == 423:
            wait = hs.LOCKED_BACKOFF
        else:
            wait = hs.SERVER_ERROR_BACKOFF * 2**attempt
        log.warning("HubSpot call failed (%s); retrying in %.1f s", err, wait * self.backoff_scale)
        self._sleep(wait * self.backoff_scale)

    def _observe(self, headers: Any, *, spent: bool = False) -> None:
        """Hand HubSpot's daily usage (its headers, on errors too) to the shared budget; `spent` (a DAILY
        429) records the whole allowance as used, so every worker on the budget waits for the next probe."""
        daily = headers.get(hs.DAILY_LIMIT_HEADER) if headers else None
        remaining = headers.get(hs.DAILY_REMAINING_HEADER) if headers else None
        limit = used = None
        if daily and remaining:
            try:
                limit, used = int(daily), int(daily) - int(remaining)
            except ValueError:
                log.debug("unreadable daily rate-limit headers %r / %r", daily, remaining)
        if limit:
            self._daily_limit = limit
        if spent:
            # OAuth apps get no daily headers: the last limit seen, the connection's, or a stand-in
            limit = limit or self._daily_limit or int(self.info.options.get("daily_limit") or 0) \
                or _UNKNOWN_DAILY_LIMIT
            used = limit
        if limit and used is not None:
            self.budget.observe(used, limit)

    # --- the one paging loop ------------------------------------------------------------------

    def pages(self, fetch: Callable[[str | None], dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """JSON bodies of `fetch(after)` until HubSpot stops sending `paging.next.after`."""
        after: str | None = None
        while True:
            body = fetch(after)
            yield body
            nxt = next_after(body)
            if not nxt:
                return
            after = nxt


def next_after(body: dict[str, Any] | None) -> str | None:
    """The `paging.next.after` cursor of a list or search body, if there is a next page."""
    nxt = ((body or {}).get("paging") or {}).get("next") or {}
    return str(nxt["after"]) if nxt.get("after") not in (None, "") else None
