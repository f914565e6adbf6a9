"""Applying CRM changes to the unified tables: upserts, soft deletes, merges, in one transaction.

Used by the sync engine for each page and by the webhook jobs for fetched records. Merges mark
the loser deleted with `merged_into`, move its scores and score history to the survivor and
re-point the records that referenced it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from adapters.base import Change
from connector import cursors, store
from connector.errors import SkippableError
from connector.mappings import Mapping, apply
from connector.model import RECORD_MODELS, Score, ScoreHistory, utcnow

COUNT_KEYS = ("created", "updated", "deleted", "merged", "unchanged", "skipped")
# `raw["_rapport"]["keep"]`: derived values an adapter left unread (say, associations, which do not
# move the modified stamp); the stored record's values stand for them instead of turning null.
KEEP_STORED = "keep"
_SCORE = Score.__table__  # type: ignore[attr-defined]
_HISTORY = ScoreHistory.__table__  # type: ignore[attr-defined]
MERGE_CHUNK = 500  # merges re-pointed by one statement per table


@dataclass
class Tally:
    """Counts per object and the records that were skipped, with why."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Accounts whose mapped data (own or a child's) really changed: what needs rescoring. A change
    # that leaves the mapped values as they were, such as our own score write, touches nothing.
    touched: set[str] = field(default_factory=set)

    def add(self, object: str, key: str, n: int = 1) -> None:
        """Count n records of one object under key."""
        per = self.counts.setdefault(object, dict.fromkeys(COUNT_KEYS, 0))
        per[key] += n

    def skip(self, object: str, external_id: str, exc: Exception) -> None:
        """Count a skipped record and keep its reason."""
        self.add(object, "skipped")
        self.errors.append({"object": object, "external_id": external_id, "error": type(exc).__name__,
                            "message": str(exc)})


_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS  # dates through _json_default, as json does


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def normalize(change: Change) -> Change:
    """The change with its raw record as JSON gives it back (what the database stores and returns)."""
    try:
        raw = orjson.loads(orjson.dumps(change.raw, default=_json_default, option=_ORJSON_OPTIONS))
    except TypeError:  # what orjson declines (an integer past 64 bits)
        raw = json.loads(json.dumps(change.raw, default=_json_default))
    return change if raw == change.raw else replace(change, raw=raw)


def _stored(conn: sa.Connection, object: str, connection_id: int, ids: Sequence[str],
            with_raw: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    found: dict[str, dict[str, Any]] = {}
    columns = [c for c in t.c if c.name not in ("raw", "id")]
    for start in range(0, len(ids), 500):
        rows = store.by_ids(conn, t, columns, connection_id, ids[start:start + 500]).mappings()
        found.update({r["external_id"]: dict(r) for r in rows})
    wanted = [i for i in with_raw if i in found]
    for start in range(0, len(wanted), 500):
        raws: Any = store.by_ids(conn, t, [t.c.external_id, t.c.raw], connection_id, wanted[start:start + 500])
        for row in raws:
            found[str(row[0])]["raw"] = row[1]
    return found


def apply_page(conn: sa.Connection, connection_id: int, object: str, changes: Sequence[Change], mapping: Mapping,
               tally: Tally, *, cursor: cursors.Cursor | None = None, now: datetime | None = None) -> None:
    """Apply one page of changes (as `normalize` gives them) inside the caller's transaction.

    With a cursor, changes it has already seen, and look-back changes the stored rows already
    hold, are left alone.
    """
    now = now or utcnow()
    store.lock_connection_rows(conn, connection_id)
    latest: dict[str, Change] = {}
    for change in changes:  # ascending, so the last one of an id is its newest state
        latest[change.external_id] = change
    if cursor is not None:
        for change in [c for c in latest.values() if cursors.already_seen(cursor, c)]:
            tally.add(object, "unchanged")
            del latest[change.external_id]
    recheck = [c.external_id for c in latest.values() if cursor is not None and cursors.needs_check(cursor, c)]
    unread = [c.external_id for c in latest.values() if _unread(c)]
    stored = _stored(conn, object, connection_id, list(latest), with_raw=[*recheck, *unread])
    if unread:
        columns = _derived_columns(mapping, object)
        for ident in unread:
            latest[ident] = _with_stored_values(latest[ident], stored.get(ident), columns)
    todo = [c for c in latest.values()
            if not (c.external_id in recheck and cursors.unchanged(stored.get(c.external_id), c))]
    tally.add(object, "unchanged", len(latest) - len(todo))
    rows, has_fk = [], "account_id" in RECORD_MODELS[object].__table__.c  # type: ignore[attr-defined]
    for change in todo:
        if change.deleted:
            continue
        try:
            row = apply(mapping, object, change.raw)
        except SkippableError as exc:
            tally.skip(object, change.external_id, exc)
            continue
        row.update(connection_id=connection_id, external_id=change.external_id, modified_at=change.modified_at,
                   raw=change.raw, is_deleted=False, merged_into=None, synced_at=now)
        rows.append(row)
        tally.add(object, "updated" if change.external_id in stored else "created")
        _touch(tally, object, row, stored.get(change.external_id))
    if has_fk:
        _resolve_accounts(conn, connection_id, rows)
    store.upsert_records(conn, object, rows)
    created = [r["external_id"] for r in rows if r["external_id"] not in stored]
    if object == "account" and created:  # children that arrived before their account get linked now
        for child in RECORD_MODELS:
            store.link_accounts(conn, connection_id, child, account_external_ids=created)
    merged = [(change.external_id, survivor) for change in todo if change.deleted
              if (survivor := _bury(conn, connection_id, object, change, stored.get(change.external_id), tally, now))]
    if merged:  # after every loser of the page is buried, so that each one's heir is final
        heirs = [(loser, _heir(conn, connection_id, object, survivor)) for loser, survivor in merged]
        if object == "account":
            tally.touched.update(heir for _, heir in heirs)
        merge(conn, connection_id, object, heirs)


def _resolve_accounts(conn: sa.Connection, connection_id: int, rows: list[dict[str, Any]]) -> None:
    """Set each row's account_id from its account_external_id before the rows are written (writing
    them and then updating the link would store every row twice). An account not synced yet leaves
    it null until that account arrives."""
    wanted = sorted({r["account_external_id"] for r in rows if r.get("account_external_id")})
    t = RECORD_MODELS["account"].__table__  # type: ignore[attr-defined]
    ids: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        found: Any = store.by_ids(conn, t, [t.c.external_id, t.c.id], connection_id, wanted[start:start + 500])
        ids.update((str(row[0]), int(row[1])) for row in found)
    for row in rows:
        row["account_id"] = ids.get(row.get("account_external_id") or "")


def unresolved(conn: sa.Connection, connection_id: int, object: str, changes: Sequence[Change],
               mapping: Mapping) -> list[str]:
    """Ids of the changes with unread derived values that the stored records cannot supply either.

    Such a record was never stored alive (say, restored from the recycle bin, or created before the
    window start and changed again before any run read it): its values must be read by id.
    """
    unread = [c for c in changes if _unread(c)]
    if not unread:
        return []
    ids = [c.external_id for c in unread]
    stored = _stored(conn, object, connection_id, ids, with_raw=ids)
    columns = _derived_columns(mapping, object)
    return [c.external_id for c in unread if _unread(_with_stored_values(c, stored.get(c.external_id), columns))]


def with_read_values(change: Change, read: Change | None) -> Change:
    """The change with its unread derived values taken from `read` (the record read by id), where it has them."""
    if read is None or read.deleted or not _unread(change):
        return change
    derived, found = dict(change.raw["_rapport"]), read.raw.get("_rapport") or {}
    known = set(found) - set(found.get(KEEP_STORED) or ())
    derived.update({k: found[k] for k in derived[KEEP_STORED] if k in known})
    missing = [k for k in derived.pop(KEEP_STORED) if k not in known]
    if missing:
        derived[KEEP_STORED] = missing
    return replace(change, raw={**change.raw, "_rapport": derived})


def _unread(change: Change) -> bool:
    derived = change.raw.get("_rapport") if isinstance(change.raw, dict) else None
    return not change.deleted and isinstance(derived, dict) and bool(derived.get(KEEP_STORED))


def _derived_columns(mapping: Mapping, object: str) -> dict[str, str]:
    """`_rapport` key -> the column a mapping copies it into unchanged (text, no value map)."""
    out = {}
    for target, spec, column, _read in mapping.compiled(object):
        source = str(spec.get("source") or "")
        if column is not None and source.startswith("_rapport.") and set(spec) <= {"source", "cast"} \
                and spec.get("cast", "str") == "str":
            out[source[len("_rapport."):]] = target
    return out


def _with_stored_values(change: Change, stored: dict[str, Any] | None, columns: dict[str, str]) -> Change:
    """The change with the derived values its adapter did not read taken from the stored record.

    The stored column wins over the stored raw record (a merge re-points the column, not the raw
    record). Values the stored record does not know either stay null and keep their mark, until a
    read that resolves them comes (the sync engine fetches such records before applying a page).
    """
    derived = dict(change.raw["_rapport"])
    before = ((stored or {}).get("raw") or {}).get("_rapport") or {}
    missing = []
    for key in derived.pop(KEEP_STORED):
        if stored is None or key in (before.get(KEEP_STORED) or ()):
            missing.append(key)
        elif key in columns:
            derived[key] = stored[columns[key]]
        elif key in before:
            derived[key] = before[key]
        else:
            missing.append(key)
    if missing:
        derived[KEEP_STORED] = missing
    return replace(change, raw={**change.raw, "_rapport": derived})


_NOT_CONTENT = frozenset({"connection_id", "external_id", "modified_at", "synced_at", "raw", "account_id"})


def _account_of(object: str, external_id: str, values: dict[str, Any] | None) -> str | None:
    if object == "account":
        return external_id
    return (values or {}).get("account_external_id")


def _touch(tally: Tally, object: str, row: dict[str, Any], stored: dict[str, Any] | None) -> None:
    """Note the accounts a new row changes: its own (and its former one, when it moved)."""
    if stored is not None and not stored["is_deleted"] and all(
        row[k] == stored.get(k) for k in row if k not in _NOT_CONTENT
    ):
        return
    for account in {_account_of(object, row["external_id"], row), _account_of(object, row["external_id"], stored)}:
        if account:
            tally.touched.add(account)


def _bury(conn: sa.Connection, connection_id: int, object: str, change: Change, stored: dict[str, Any] | None,
          tally: Tally, now: datetime) -> str | None:
    """Mark a deleted or merged-away record; returns the survivor it was merged into, if any."""
    t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    survivor = change.merged_into if change.merged_into != change.external_id else None
    if survivor is None and stored is not None and stored["is_deleted"] and stored["merged_into"]:
        # an archived copy read later (a reconcile run's archived list) does not say the record was
        # merged; a merged-away record stays merged, so it keeps its survivor
        survivor = stored["merged_into"]
    if stored is not None and not stored["is_deleted"]:
        account = _account_of(object, change.external_id, stored)
        if account:
            tally.touched.add(account)
    if stored is not None:
        conn.execute(sa.update(t).where(t.c.connection_id == connection_id, t.c.external_id == change.external_id)
                     .values(is_deleted=True, merged_into=survivor, modified_at=change.modified_at, synced_at=now))
        if not stored["is_deleted"] or stored["merged_into"] != survivor:
            tally.add(object, "merged" if survivor else "deleted")
        else:
            tally.add(object, "unchanged")
    else:
        tally.add(object, "unchanged")
    return survivor


def _heir(conn: sa.Connection, connection_id: int, object: str, survivor: str) -> str:
    """The record that finally holds a merged one: the survivor, or whom the survivor was merged into since."""
    t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    seen = {survivor}
    # Merges at one stamp come in id order, so "B into C" may be applied before "A into B".
    while True:
        onward = conn.execute(sa.select(t.c.merged_into).where(
            t.c.connection_id == connection_id, t.c.external_id == survivor, t.c.is_deleted.is_(True))).scalar()
        if not onward or onward in seen:
            return survivor
        seen.add(onward)
        survivor = onward


def merge(conn: sa.Connection, connection_id: int, object: str, heirs: Sequence[tuple[str, str]]) -> None:
    """Move each loser's scores and history to its heir, and re-point the records that referenced it.

    `heirs`: (loser, heir) pairs in the order the merges happened. Everything moves by a few
    statements per chunk of merges, whatever their number (the reference columns have no index of
    their own: one statement per merge would scan each table once per merge).
    """
    key = (_SCORE.c.connection_id == connection_id) & (_SCORE.c.object == object)
    ref = f"{object}_external_id"
    account = RECORD_MODELS["account"].__table__  # type: ignore[attr-defined]
    pairs = list(dict(heirs).items())
    for start in range(0, len(pairs), MERGE_CHUNK):
        chunk = dict(pairs[start:start + MERGE_CHUNK])
        # An heir's current score describes the merged record better, and of several losers merged
        # into one heir without a score, the first one's moves: the others live on in history.
        first = {heir: loser for loser, heir in reversed(chunk.items())}
        later = [loser for loser, heir in chunk.items() if first[heir] != loser]
        own = (sa.select(1).select_from(stored := _SCORE.alias("stored"))
               .where(stored.c.connection_id == connection_id, stored.c.object == object,
                      stored.c.external_id == sa.case(chunk, value=_SCORE.c.external_id)).exists())
        conn.execute(sa.delete(_SCORE).where(key, _SCORE.c.external_id.in_(later)))
        conn.execute(sa.delete(_SCORE).where(key, _SCORE.c.external_id.in_(list(chunk)), own))
        conn.execute(sa.update(_SCORE).where(key, _SCORE.c.external_id.in_(list(chunk)))
                     .values(external_id=sa.case(chunk, value=_SCORE.c.external_id)))
        conn.execute(sa.update(_HISTORY).where(_HISTORY.c.connection_id == connection_id, _HISTORY.c.object == object,
                                               _HISTORY.c.external_id.in_(list(chunk)))
                     .values(external_id=sa.case(chunk, value=_HISTORY.c.external_id)))
        for model in RECORD_MODELS.values():
            t = model.__table__  # type: ignore[attr-defined]
            if ref not in t.c:
                continue
            heir_of = sa.case(chunk, value=t.c[ref])
            values: dict[str, Any] = {ref: heir_of}
            if object == "account" and "account_id" in t.c:
                values["account_id"] = (sa.select(account.c.id)
                                        .where(account.c.connection_id == connection_id, account.c.external_id == heir_of)
                                        .scalar_subquery())
            conn.execute(sa.update(t).where(t.c.connection_id == connection_id, t.c[ref].in_(list(chunk)))
                         .values(**values))
