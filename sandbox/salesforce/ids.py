"""Salesforce record ids: 15-character case-sensitive ids with key prefixes, and the 18-character
case-safe form whose last three characters encode the case of the first fifteen.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")

PREFIXES: dict[str, str] = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "Case": "500",
    "Task": "00T",
    "User": "005",
    "Organization": "00D",
    "CustomField": "00N",
    "Job": "750",
    "QueryLocator": "01g",
    "Notification": "04l",
    "Action": "04k",
    "ConnectedApp": "0H4",
}


@functools.lru_cache(maxsize=65536)
def _chunk_char(chunk: str) -> str:
    bits = 0
    for i, ch in enumerate(chunk):
        if "A" <= ch <= "Z":
            bits |= 1 << i
    return _SUFFIX[bits]


def checksum(id15: str) -> str:
    """The three-character case-safe suffix of a 15-character id."""
    return _chunk_char(id15[0:5]) + _chunk_char(id15[5:10]) + _chunk_char(id15[10:15])


def to18(value: str) -> str:
    """Return the 18-character form of a 15- or 18-character id (raises ValueError if malformed)."""
    if not _ID_RE.match(value):
        raise ValueError(f"malformed id: {value!r}")
    id15 = value[:15]
    return id15 + checksum(id15)


def is_valid(value: object) -> bool:
    """True when `value` is a well-formed 15- or 18-character id whose suffix (if any) matches."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        return False
    return len(value) == 15 or value[15:] == checksum(value[:15])


def normalize(value: str) -> str | None:
    """The 18-character id, or None when `value` is not a valid id."""
    if not is_valid(value):
        return None
    return to18(value)


_PAIRS = [a + b for a in BASE62 for b in BASE62]


def _base62(n: int, width: int) -> str:
    out = ""
    while width > 0:
        n, r = divmod(n, 3844)
        out = _PAIRS[r] + out
        width -= 2
    return out


class IdFactory:
    """Mints ids per key prefix: prefix + pod "8d" + "00" + an 8-character base62 counter."""

    def __init__(self, pod: str = "8d") -> None:
        self._pod = pod
        self._counters: dict[str, itertools.count[int]] = {}
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        """A fresh 18-character id with the given 3-character key prefix."""
        with self._lock:
            counter = self._counters.setdefault(prefix, itertools.count(1))
            n = next(counter)
        return to18(prefix + self._pod + "00" + _base62(n, 8))

    def for_object(self, name: str) -> str:
        """A fresh id for an object name in PREFIXES."""
        return self.new(PREFIXES[name])
