"""Errors named for what the caller should do: retry, give up, or skip the record.

One table maps an HTTP status from either CRM to the class; every error carries the CRM, the
object, the URL and the status, and a message that says how to fix it.
"""

from __future__ import annotations

from typing import Any


class RapportError(Exception):
    """Base of every error Rapport raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        crm: str | None = None,
        object: str | None = None,
        url: str | None = None,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.crm = crm
        self.object = object
        self.url = url
        self.status = status
        self.code = code
        self.hint = hint

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                self.crm and f"crm={self.crm}",
                self.object and f"object={self.object}",
                self.status and f"status={self.status}",
                self.code and f"code={self.code}",
            )
            if part
        )
        text = self.message + (f" [{where}]" if where else "")
        return text + (f" — {self.hint}" if self.hint else "")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description, for run history and API responses."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "crm": self.crm,
            "object": self.object,
            "url": self.url,
            "status": self.status,
            "code": self.code,
            "hint": self.hint,
        }


class RetriableError(RapportError):
    """Try again later: a timeout, a 5xx, a lock."""


class RateLimited(RetriableError):
    """The CRM (or our own budget) says slow down; wait `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class BudgetExhausted(RetriableError):
    """Our configured share of the CRM's daily API allocation is spent; resume later."""

    def __init__(self, message: str, *, resume_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.resume_after = resume_after


class FatalError(RapportError):
    """Retrying will not help until a person changes something."""


class AuthError(FatalError):
    """Credentials are wrong, expired beyond refresh, or lack a scope."""


class ConfigError(FatalError):
    """A setting, mapping or connection option is invalid."""


class MappingError(ConfigError):
    """A field mapping names a field or transform that cannot work."""


class SkippableError(RapportError):
    """This one record cannot be processed; the rest can."""


class InvalidRecord(SkippableError):
    """The CRM returned, or refused, a record we cannot use."""


class WebhookRejected(RapportError):
    """A webhook request that we refuse; `status` is the 4xx to answer with."""

    def __init__(self, message: str, *, status: int = 400, **kw: Any) -> None:
        super().__init__(message, status=status, **kw)


_STATUS_TABLE: dict[int, tuple[type[RapportError], str]] = {
    400: (FatalError, "the request was malformed; check the mapping and the field names"),
    401: (AuthError, "the session or token is invalid; reconnect or refresh the credentials"),
    403: (AuthError, "access refused; check the integration user's permissions or the app's scopes"),
    404: (SkippableError, "the record or resource does not exist (deleted or never existed)"),
    409: (SkippableError, "the record conflicts with another; it will be retried on the next run"),
    423: (RetriableError, "the record is locked; retried after a short wait"),
    429: (RateLimited, "the CRM's rate limit was reached; retried after the limit resets"),
    # HubSpot: the account's data is moving between data centres; Retry-After says for how long
    477: (RateLimited, "the CRM is migrating the account; retried when it says (Retry-After)"),
}


def error_for_status(
    status: int,
    message: str,
    *,
    crm: str | None = None,
    object: str | None = None,
    url: str | None = None,
    code: str | None = None,
    retry_after: float | None = None,
) -> RapportError:
    """Build the error for an HTTP status, from the one table above."""
    cls: type[RapportError]
    if status >= 500:
        cls, hint = RetriableError, "the CRM had a temporary failure; the call will be retried"
    else:
        cls, hint = _STATUS_TABLE.get(status, (FatalError, "unexpected response from the CRM"))
    kw: dict[str, Any] = dict(crm=crm, object=object, url=url, status=status, code=code, hint=hint)
    if cls is RateLimited:
        return RateLimited(message, retry_after=retry_after, **kw)
    return cls(message, **kw)
