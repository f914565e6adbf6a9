"""All HTTP to Salesforce, through simple-salesforce: sessions, retries, budget, the paging loop.

Every call goes through `SalesforceClient.call`, which checks the API budget, refreshes an
expired session once, retries idempotent calls after 5xx/timeouts with backoff, and turns the
client's exceptions into Rapport's errors (named for what the caller should do).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceOperationError,
)

from adapters.base import Budget, NoBudget, SecretsSink
from adapters.salesforce import auth
from adapters.salesforce import settings as S
from connector.errors import (
    AuthError,
    BudgetExhausted,
    FatalError,
    MappingError,
    RapportError,
    RetriableError,
    error_for_status,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
_NO_COLUMN = re.compile(r"No such column '([^']+)' on entity '([^']+)'")
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    json.JSONDecodeError,
)


class _Transport(HTTPAdapter):
    """Gives every request a timeout (the client sets none) and the connection's CA bundle.

    requests lets REQUESTS_CA_BUNDLE override `session.verify`; a connection's own private CA must
    win over the machine's, so it is applied here, where the request is sent.
    """

    def __init__(self, ca_bundle: str | None) -> None:
        super().__init__()
        self.ca_bundle = ca_bundle

    def send(self, request: Any, **kw: Any) -> Any:  # type: ignore[override]
        if kw.get("timeout") is None:
            kw["timeout"] = S.HTTP_TIMEOUT_SECONDS
        if self.ca_bundle:
            kw["verify"] = self.ca_bundle
        return super().send(request, **kw)


def _first_error(exc: SalesforceError) -> tuple[str | None, str]:
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return content[0].get("errorCode"), str(content[0].get("message", ""))
    if isinstance(content, dict):
        return content.get("errorCode") or content.get("error"), str(content.get("message") or content)
    return None, str(content)[:300]


def translate(exc: Exception, object: str | None = None) -> RapportError:
    """The Rapport error for an exception raised by simple-salesforce or requests."""
    if isinstance(exc, RapportError):
        return exc
    if isinstance(exc, SalesforceAuthenticationFailed):
        return AuthError(f"Salesforce login failed: {exc}", crm=S.CRM, object=object, code=str(exc.code))
    if isinstance(exc, SalesforceError):
        code, message = _first_error(exc)
        kw: dict[str, Any] = dict(crm=S.CRM, object=object, url=exc.url, status=exc.status, code=code)
        if code == S.LIMIT_EXCEEDED:
            return BudgetExhausted(
                f"Salesforce refused the call: the org's daily API allocation is spent ({message})",
                resume_after=S.BUDGET_RESUME_SECONDS,
                hint="the run resumes when the rolling 24 h usage falls",
                **kw,
            )
        if code == S.INVALID_FIELD:
            missing = _NO_COLUMN.search(message)
            field, entity = (missing.group(1), missing.group(2)) if missing else ("?", object or "?")
            err = MappingError(
                f"the org has no field {field} on {entity}; create it or remove it from the mapping",
                hint="fix the field mapping of this connection",
                **kw,
            )
            err.field = field  # type: ignore[attr-defined]
            return err
        if code == S.INVALID_LOCATOR:
            return RetriableError(f"the query cursor expired: {message}", **kw)
        kw.pop("status")
        return error_for_status(
            exc.status, f"Salesforce answered {exc.status} {code or ''}: {message}".strip(), **kw
        )
    if isinstance(exc, SalesforceOperationError):
        return FatalError(
            f"a Bulk API 2.0 job failed: {exc}",
            crm=S.CRM,
            object=object,
            hint="see the job in Setup > Bulk Data Load Jobs",
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return FatalError(
            f"the TLS certificate of Salesforce was refused: {exc}",
            crm=S.CRM,
            object=object,
            hint="for a private CA pass --ca-bundle to `rapport connect salesforce`",
        )
    if isinstance(exc, _TRANSIENT):
        return RetriableError(
            f"Salesforce did not answer cleanly: {type(exc).__name__}: {exc}", crm=S.CRM, object=object
        )
    raise exc


def _query_more(sf: Salesforce, *, url: str, headers: dict[str, str]) -> Any:
    return sf.query_more(url, identifier_is_url=True, headers=headers)


def _bulk_job(sf: Salesforce, sobject: str) -> Any:
    # The client's query() generator cannot resume after a refresh, so its job client drives the
    # steps (create, wait, result pages) one by one, each retried on its own.
    return getattr(sf.bulk2, sobject)._client


def _results_page(sf: Salesforce, *, sobject: str, job_id: str, locator: str, page_size: int) -> Any:
    return _bulk_job(sf, sobject).get_query_results(job_id, locator, page_size)


def _ingest_results(sf: Salesforce, *, sobject: str, job_id: str, kind: str) -> str:
    bulk = getattr(sf.bulk2, sobject)
    getter = {
        "successful": bulk.get_successful_records,
        "failed": bulk.get_failed_records,
        "unprocessed": bulk.get_unprocessed_records,
    }[kind]
    return str(getter(job_id))


class SalesforceClient:
    """One org's session: the simple-salesforce client plus budget, refresh and retry policy."""

    def __init__(
        self,
        instance_url: str | None,
        secrets: dict[str, Any],
        *,
        login_url: str = S.DEFAULT_LOGIN_URL,
        ca_bundle: str | None = None,
        api_version: str = S.API_VERSION,
        budget: Budget | None = None,
        budget_share: float = S.API_BUDGET_SHARE,
        on_secrets: SecretsSink | None = None,
        retries: int = S.RETRIES,
        backoff: float = S.RETRY_BACKOFF_SECONDS,
    ) -> None:
        self.secrets = dict(secrets)
        given = self.secrets.get("instance_url") or instance_url
        self.instance_url = auth.require_https(given, "instance URL") if given else None
        self.login_url = auth.require_https(login_url, "login URL")
        self.api_version = api_version
        self.budget = budget or NoBudget()
        self.budget_share = budget_share
        self.on_secrets = on_secrets
        self.retries, self.backoff = retries, backoff
        self.calls = 0
        self.usage: tuple[int, int] | None = None
        self.session = requests.Session()
        self.session.mount("https://", _Transport(ca_bundle))
        if ca_bundle:
            self.session.verify = ca_bundle
        self.session.hooks["response"].append(self._on_response)
        self._sf: Salesforce | None = None

    # --- session -------------------------------------------------------------------------------

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        header = response.headers.get(S.LIMIT_INFO_HEADER)
        usage = Salesforce.parse_api_usage(header).get("api-usage") if header else None
        if usage is not None:
            self.usage = (usage.used, usage.total)
            self.budget.observe(usage.used, usage.total)

    @property
    def sf(self) -> Salesforce:
        """The simple-salesforce client, logged in on first use when only a grant is stored."""
        if self._sf is None:
            if not self.secrets.get("access_token") or not self.instance_url:
                self.refresh()
            else:
                self._sf = self._build()
        assert self._sf is not None
        return self._sf

    def _build(self) -> Salesforce:
        return Salesforce(
            instance_url=self.instance_url,
            session_id=self.secrets["access_token"],
            version=self.api_version,
            session=self.session,
            object_pairs_hook=None,  # plain dicts: the C JSON decoder, not OrderedDict, on every page
        )

    @property
    def can_refresh(self) -> bool:
        """True when the stored credentials allow a new grant without a person."""
        return auth.flow_for(self.secrets) is not None

    def refresh(self) -> auth.Token:
        """Get a new access token (refresh token, JWT or password grant) and persist it."""
        flow = auth.flow_for(self.secrets)
        if flow is None:
            raise AuthError(
                "the Salesforce access token is expired or invalid and no refresh token, JWT key or password is stored",
                crm=S.CRM,
                hint="run `rapport connect salesforce` again, with a refresh token or JWT credentials",
            )
        self._check_budget()
        token = auth.request_token(self.session, flow, self.secrets, self.login_url)
        self.secrets["access_token"] = token.access_token
        if token.refresh_token:
            self.secrets["refresh_token"] = token.refresh_token
        if token.instance_url != self.instance_url:
            self.secrets["instance_url"] = token.instance_url
        self.instance_url = token.instance_url
        self._sf = self._build()
        if self.on_secrets is not None:
            self.on_secrets(dict(self.secrets))
        log.info("salesforce session refreshed with the %s grant", flow)
        return token

    # --- budget and retries ----------------------------------------------------------------------

    def _check_budget(self) -> None:
        self.budget.acquire()
        if self.usage is None:
            return
        used, limit = self.usage
        if limit and used + 1 > self.budget_share * limit:
            raise BudgetExhausted(
                f"Rapport has used {used} of the org's {limit} daily API calls; its share is {self.budget_share:.0%}",
                crm=S.CRM,
                code="BUDGET_SHARE",
                resume_after=S.BUDGET_RESUME_SECONDS,
                hint="the run resumes later; raise RAPPORT_API_BUDGET_SHARE to allow more",
            )

    def call(self, fn: Callable[[Salesforce], T], *, retry: bool = True, object: str | None = None) -> T:
        """Run one client call under the budget, with one session refresh and bounded retries."""
        attempt, refreshed = 0, False
        while True:
            self._check_budget()
            try:
                return fn(self.sf)
            except SalesforceExpiredSession as exc:
                if refreshed:  # a brand-new session refused too: another refresh will not help
                    raise translate(exc, object) from exc
                self.refresh()  # without a way to a new grant this says what to do
                refreshed = True
            except (SalesforceError, SalesforceOperationError, *_TRANSIENT) as exc:
                err = translate(exc, object)
                if (
                    not (retry and type(err) is RetriableError and err.code != S.INVALID_LOCATOR)
                    or attempt >= self.retries
                ):
                    raise err from exc
                delay = min(self.backoff * 2**attempt, S.RETRY_BACKOFF_CAP) * (0.5 + random.random() / 2)
                log.warning("salesforce call failed (%s); retry %d in %.2fs", err.message, attempt + 1, delay)
                time.sleep(delay)
                attempt += 1

    # --- reads -----------------------------------------------------------------------------------

    def query_pages(
        self, soql: str, *, include_deleted: bool = True, object: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The one paging loop: each page of a (queryAll) SOQL query, following nextRecordsUrl."""
        headers = {S.QUERY_OPTIONS_HEADER: f"batchSize={S.QUERY_BATCH_SIZE}"}
        page = self.call(
            lambda sf: sf.query(soql, include_deleted=include_deleted, headers=headers), object=object
        )
        while True:
            yield page
            url = page.get("nextRecordsUrl")
            if page.get("done", True) or not url:
                return
            page = self.call(partial(_query_more, url=url, headers=headers), object=object)

    def describe(self, sobject: str) -> dict[str, Any]:
        """GET sobjects/{T}/describe."""
        return self.call(lambda sf: getattr(sf, sobject).describe(), object=sobject)

    def bulk_query(self, sobject: str, soql: str, *, poll: float, page_size: int) -> Iterator[str]:
        """The CSV result pages of a Bulk API 2.0 queryAll job, resumable step by step."""
        created = self.call(
            lambda sf: _bulk_job(sf, sobject).create_job(Operation.query_all, soql), object=sobject
        )
        job_id = created["id"]
        self.call(lambda sf: _bulk_job(sf, sobject).wait_for_job(job_id, True, poll), object=sobject)
        locator = ""
        while True:
            step = partial(
                _results_page, sobject=sobject, job_id=job_id, locator=locator, page_size=page_size
            )
            result = self.call(step, object=sobject)
            yield result["records"]
            locator = result["locator"]
            if not locator:
                return

    # --- writes ----------------------------------------------------------------------------------

    def composite_update(
        self, records: list[dict[str, Any]], *, object: str | None = None
    ) -> list[dict[str, Any]]:
        """PATCH composite/sobjects (allOrNone=false): one result per record, in order."""
        body = {"allOrNone": False, "records": records}
        # Setting the same values twice is harmless, so a failed call is retried like a read.
        result = self.call(
            lambda sf: sf.restful(S.COMPOSITE_SOBJECTS, method="PATCH", json=body), object=object
        )
        return list(result or [])

    def bulk_update(
        self, sobject: str, records: list[dict[str, Any]], *, poll: float
    ) -> list[tuple[str, str, str]]:
        """Bulk API 2.0 ingest update; per job the (successful, failed, unprocessed) result CSVs."""
        runs = self.call(
            lambda sf: getattr(sf.bulk2, sobject).update(records=records, wait=poll), object=sobject
        )
        out = []
        for run in runs:
            texts = [
                self.call(
                    partial(_ingest_results, sobject=sobject, job_id=run["job_id"], kind=kind), object=sobject
                )
                for kind in ("successful", "failed", "unprocessed")
            ]
            out.append((texts[0], texts[1], texts[2]))
        return out

    def create(self, sobject: str, values: dict[str, Any]) -> str:
        """POST sobjects/{T}/ (not retried: a second POST would make a second record)."""
        result = self.call(lambda sf: getattr(sf, sobject).create(values), retry=False, object=sobject)
        return str(result["id"])

    def create_custom_field(self, full_name: str, metadata: dict[str, Any]) -> Any:
        """POST tooling/sobjects/CustomField."""
        data = {"FullName": full_name, "Metadata": metadata}
        return self.call(
            lambda sf: sf.toolingexecute(S.TOOLING_CUSTOM_FIELD, method="POST", data=data),
            object=full_name.split(".")[0],
        )
