"""Every incremental-sync cursor rule, and nowhere else: window, de-duplication, advance, storage.

A cursor is the highest modified stamp whose page is committed, plus the (id, content digest) of
each record seen at exactly that stamp. Windows start closed (`since <= stamp`) and a look-back
earlier, to catch records the CRM indexed late; re-read records are recognised instead of
applied twice. The upper bound is frozen when the run starts: what changes during the run comes
next time. The cursor is saved in the same transaction as the page's rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from adapters.base import Change
from connector.model import SyncCursor, utcnow

_T = SyncCursor.__table__  # type: ignore[attr-defined]


@dataclass
class Cursor:
    """Where one object's incremental sync stands."""

    value: datetime | None = None
    seen: dict[str, str] = field(default_factory=dict)


def digest(change: Change) -> str:
    """A short fingerprint of a change's content: same id and stamp with other content is a new change."""
    content = [change.raw, change.deleted, change.merged_into]
    try:
        body = orjson.dumps(content, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # what orjson declines (an integer past 64 bits)
        body = json.dumps(content, sort_keys=True, default=str).encode()
    return hashlib.blake2b(body, digest_size=8).hexdigest()


def load(conn: sa.Connection, connection_id: int, object: str) -> Cursor:
    """The stored cursor of one object (empty before the first sync)."""
    row = conn.execute(sa.select(_T.c.value, _T.c.seen_ids)
                       .where(_T.c.connection_id == connection_id, _T.c.object == object)).first()
    if row is None:
        return Cursor()
    return Cursor(row.value, {str(i): str(d) for i, d in (row.seen_ids or [])})


def save(conn: sa.Connection, connection_id: int, object: str, cursor: Cursor) -> None:
    """Store the cursor (call inside the transaction that committed the page)."""
    values = dict(value=cursor.value, seen_ids=sorted([i, d] for i, d in cursor.seen.items()), updated_at=utcnow())
    done = conn.execute(sa.update(_T).where(_T.c.connection_id == connection_id, _T.c.object == object)
                        .values(**values)).rowcount
    if not done:
        conn.execute(sa.insert(_T).values(connection_id=connection_id, object=object, **values))


def reset(conn: sa.Connection, connection_id: int, object: str | None = None) -> None:
    """Forget where the sync stands, so the next incremental run reads everything again."""
    stmt = sa.delete(_T).where(_T.c.connection_id == connection_id)
    conn.execute(stmt if object is None else stmt.where(_T.c.object == object))


def window_start(cursor: Cursor, lookback_s: float, *, full: bool) -> datetime | None:
    """The closed start of the next window: the cursor minus the look-back (None reads everything)."""
    if full or cursor.value is None:
        return None
    return cursor.value - timedelta(seconds=lookback_s)


def saved_per_page(since: datetime | None) -> bool:
    """Whether the cursor may be saved with each page: only windowed reads come ascending.

    A read without a window start (a first or full sync) may come in the CRM's own order (HubSpot
    lists by id), so a page's newest stamp says nothing of the pages still to come; such a read
    saves the cursor once the object is done.
    """
    return since is not None


def after_whole_read(cursor: Cursor, until: datetime) -> Cursor:
    """The cursor once a read without a window start (first or full sync) is done.

    Its newest stamp, as `advance` left it; if the read found nothing at all, the bound itself
    (nothing older exists), so that the next run searches a window instead of reading everything.
    """
    return cursor if cursor.value is not None else Cursor(until, {})


def already_seen(cursor: Cursor, change: Change) -> bool:
    """True for a change at exactly the cursor's stamp that was already applied with the same content."""
    return change.modified_at == cursor.value and cursor.seen.get(change.external_id) == digest(change)


def needs_check(cursor: Cursor, change: Change) -> bool:
    """True for a change older than the cursor (look-back): apply it only if the stored row differs."""
    return cursor.value is not None and change.modified_at < cursor.value


def advance(cursor: Cursor, changes: Iterable[Change]) -> Cursor:
    """The cursor after a committed page: the page's highest stamp, never backwards."""
    value, seen = cursor.value, dict(cursor.seen)
    for change in changes:
        stamp = change.modified_at
        if value is None or stamp > value:
            value, seen = stamp, {}
        if stamp == value:
            seen[change.external_id] = digest(change)
    return Cursor(value, seen)


def unchanged(stored: dict[str, Any] | None, change: Change) -> bool:
    """True when the stored row already holds this change (same stamp, state and raw record)."""
    if stored is None:
        return change.deleted and not change.merged_into
    if stored["modified_at"] != change.modified_at or stored["is_deleted"] != change.deleted:
        return False
    if change.deleted:
        return stored["merged_into"] == change.merged_into
    return stored.get("raw") == change.raw
