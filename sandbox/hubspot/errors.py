"""HubSpot's error bodies: `{status, message, correlationId, category, errors?, context?}`."""

from __future__ import annotations

import json
import uuid
from typing import Any


def correlation_id() -> str:
    """A fresh correlation id, as HubSpot puts on every error."""
    return str(uuid.uuid4())


class ApiError(Exception):
    """An error response: HTTP status plus HubSpot's JSON body."""

    def __init__(self, status: int, category: str, message: str, *, errors: list[dict] | None = None,
                 context: dict[str, list[str]] | None = None, sub_category: str | None = None,
                 body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        if body is not None:
            self.body = body
            return
        self.body = {"status": "error", "message": message, "correlationId": correlation_id(), "category": category}
        if sub_category:
            self.body["subCategory"] = sub_category
        if errors is not None:
            self.body["errors"] = errors
        if context is not None:
            self.body["context"] = context


def validation(message: str, *, errors: list[dict] | None = None) -> ApiError:
    """400 VALIDATION_ERROR."""
    return ApiError(400, "VALIDATION_ERROR", message, errors=errors)


def not_found(message: str = "resource not found") -> ApiError:
    """404 OBJECT_NOT_FOUND."""
    return ApiError(404, "OBJECT_NOT_FOUND", message)


def standard_error(category: str, message: str, context: dict[str, list[str]],
                   sub_category: str | None = None) -> dict[str, Any]:
    """One entry of a batch response's `errors` (StandardError)."""
    out: dict[str, Any] = {"status": "error", "category": category, "message": message, "context": context,
                           "errors": [], "links": {}}
    if sub_category:
        out["subCategory"] = sub_category
    return out


def invalid_properties(portal_id: int, problems: list[tuple[str, str, str]]) -> ApiError:
    """400 for property values HubSpot refuses; problems are (name, error code, message)."""
    details = [{"isValid": False, "message": msg, "error": code, "name": name, "localizedErrorMessage": msg,
                "portalId": portal_id} for name, code, msg in problems]
    return ApiError(400, "VALIDATION_ERROR", "Property values were not valid: " + json.dumps(details))
