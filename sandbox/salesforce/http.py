"""HTTP plumbing shared by the endpoint modules: the route registry, the platform's JSON error
arrays, and fast JSON responses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from werkzeug.routing import BaseConverter
from werkzeug.wrappers import Request, Response

VERSIONS = [f"{v}.0" for v in range(31, 63)]
LABELS = {"59.0": "Winter '24", "60.0": "Spring '24", "61.0": "Summer '24", "62.0": "Winter '25"}
NOT_FOUND = "The requested resource does not exist"


class ApiError(Exception):
    """An error the REST API answers with: a status and a JSON array of {message, errorCode[, fields]}."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def response(self) -> Response:
        """The error as the platform sends it."""
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        headers = {"WWW-Authenticate": "Token"} if self.status == 401 else None
        return json_response([item], self.status, headers)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response, serialized with orjson."""
    return Response(orjson.dumps(data), status=status, headers=headers,
                    content_type="application/json;charset=UTF-8")


def raw_json_response(body: bytes, status: int = 200) -> Response:
    """A response from pre-serialized JSON bytes."""
    return Response(body, status=status, content_type="application/json;charset=UTF-8")


def read_json(request: Request) -> Any:
    """The request's JSON body; malformed JSON is a 400 JSON_PARSER_ERROR."""
    data = request.get_data(cache=True)
    if not data.strip():
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body is empty: send a JSON document")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character in the JSON body: {exc}") from exc


class VersionConverter(BaseConverter):
    """`v59.0` in a path."""

    regex = r"\d{2}\.\d"


@dataclass(frozen=True)
class Route:
    """One registered endpoint: its path pattern, methods, handler and kind (data | oauth | hook | open)."""

    path: str
    methods: tuple[str, ...]
    handler: Callable[..., Response]
    kind: str


ROUTES: list[Route] = []


def route(path: str, methods: tuple[str, ...] = ("GET",), kind: str = "data") -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Register a handler; data routes are prefixed with /services/data/v<version>."""

    def wrap(fn: Callable[..., Response]) -> Callable[..., Response]:
        full = f"/services/data/v<version:version>{path}" if kind == "data" else path
        ROUTES.append(Route(full, methods, fn, kind))
        return fn

    return wrap
