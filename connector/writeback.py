"""Write-back: send only the scores that changed to the CRM, in the adapter's batches.

A record is written when a score moved by at least one point or its tier, trend or drivers
changed. What was written last is kept in `writeback_state`; per-record failures are retried on
later runs with exponential backoff and given up (and reported) after `MAX_ATTEMPTS`, at once when
the CRM says retrying cannot help. A refusal for a target field that is missing or read-only holds
the records without retries until a later run finds the field writable, then writes them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters.base import Adapter, WriteItem, WriteResult
from connector.errors import BudgetExhausted, RapportError
from connector.mappings import load_mapping
from connector.model import (
    RECORD_MODELS,
    SCORED_OBJECTS,
    Connection,
    Score,
    SyncRun,
    WritebackState,
    utcnow,
)
from connector.runs import STOPPED, close_run, open_run
from connector.store import analyze, by_ids, refresh_statistics, upsert

MAX_ATTEMPTS = 5
ANALYZE_AFTER = 5000  # records written in one run past which the planner's statistics are refreshed
BACKOFF_BASE = timedelta(minutes=5)
LOOKUP_CHUNK = 1000  # records looked up by key per statement when planning a few
BATCH = 50_000  # handed to the adapter at once: it picks its batch size (and Bulk API above its threshold)
# ...unless the adapter names its batch (`write_batch`): then each CRM batch is recorded as soon as
# it is answered, so a worker killed midway leaves at most one batch unrecorded.
SCORE_KEYS = ("relationship_score", "experience_score", "tier", "drivers", "trend", "scored_at")
# Codes after which retrying the same write cannot succeed.
PERMANENT_CODES = frozenset({"ENTITY_IS_DELETED", "OBJECT_NOT_FOUND", "INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID"})
# Codes naming a target field the CRM lacks or will not let us write, whatever the record: every record
# of the object meets them, so its records wait, untried, until the field can be written.
FIELD_MISSING, FIELD_READ_ONLY = "FIELD_MISSING", "FIELD_READ_ONLY"
FIELD_CODES = frozenset({FIELD_MISSING, FIELD_READ_ONLY, "PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE", "INVALID_FIELD",
                         "INVALID_FIELD_FOR_INSERT_UPDATE"})
_CRM_NAMES = {"hubspot": ("HubSpot", "property"), "salesforce": ("Salesforce", "field")}

_S = Score.__table__  # type: ignore[attr-defined]
_W = WritebackState.__table__  # type: ignore[attr-defined]
_R = SyncRun.__table__  # type: ignore[attr-defined]


@dataclass
class Plan:
    """What a write-back would send for one object."""

    object: str
    items: list[WriteItem] = field(default_factory=list)
    fields_changed: Counter[str] = field(default_factory=Counter)
    tier_changes: Counter[str] = field(default_factory=Counter)
    before: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)
    unchanged: int = 0
    waiting: int = 0
    held: int = 0  # of the waiting ones: refused for a missing or read-only field, until it is fixed


def score_values(row: Any) -> dict[str, Any]:
    """The canonical values of one score row, by score key (numbers rounded as shown to reps)."""
    drivers = row.drivers or []
    text = "\n".join(d.get("text", "") if isinstance(d, dict) else str(d) for d in drivers[:3])
    return {
        "relationship_score": None if row.relationship is None else int(round(row.relationship)),
        "experience_score": None if row.experience is None else int(round(row.experience)),
        "tier": row.tier,
        "drivers": text,
        "trend": None if row.trend is None else int(round(row.trend)),
        "scored_at": row.scored_at,
    }


def changed_keys(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """Score keys whose change is worth a write (the scored-at stamp alone never is)."""
    keys = []
    for key in ("relationship_score", "experience_score", "trend"):
        a, b = new.get(key), old.get(key)
        if (a is None) != (b is None) or (a is not None and abs(float(a) - float(b)) >= 1):  # type: ignore[arg-type]
            keys.append(key)
    keys += [k for k in ("tier", "drivers") if (new.get(k) or "") != (old.get(k) or "")]
    return keys


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()}


def plan(
    engine: Engine,
    connection_id: int,
    object: str,
    targets: dict[str, str],
    *,
    external_ids: Sequence[str] | None = None,
    now: datetime | None = None,
) -> Plan:
    """Compare current scores with what was last written and list the writes needed."""
    now = now or utcnow()
    result = Plan(object)
    if external_ids is None:
        refresh_statistics(engine, _S.name, _W.name, RECORD_MODELS[object].__table__.name)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = _all_rows(conn, connection_id, object) if external_ids is None else \
            _rows_of(conn, connection_id, object, external_ids)
        for row in rows:
            new = score_values(row)
            old = row.written or {}
            keys = changed_keys(new, old)
            if not keys:
                result.unchanged += 1
                continue
            if row.gave_up or (row.next_attempt_at is not None and row.next_attempt_at > now):
                result.waiting += 1
                result.held += bool(row.gave_up and row.last_error_code in FIELD_CODES)
                continue
            values = {targets[k]: new[k] for k in SCORE_KEYS if k in targets}
            result.items.append(WriteItem(object, row.external_id, values))
            result.fields_changed.update(k for k in keys if k in targets)
            if new["tier"] != old.get("tier"):
                result.tier_changes[f"{old.get('tier') or '-'}→{new['tier'] or '-'}"] += 1
            if old.get("relationship_score") is not None:
                result.before.append(float(old["relationship_score"]))
            if new["relationship_score"] is not None:
                result.after.append(float(new["relationship_score"]))
    return result


def _all_rows(conn: sa.Connection, connection_id: int, object: str) -> Iterator[Any]:
    """Every live record's score with what was last written for it, in id order (one join)."""
    rec = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    query = (
        sa.select(_S, _W.c.written, _W.c.next_attempt_at, _W.c.gave_up, _W.c.last_error_code)
        .select_from(
            _S.join(rec, sa.and_(rec.c.connection_id == _S.c.connection_id, rec.c.external_id == _S.c.external_id))
            .outerjoin(
                _W,
                sa.and_(
                    _W.c.connection_id == _S.c.connection_id,
                    _W.c.object == _S.c.object,
                    _W.c.external_id == _S.c.external_id,
                ),
            )
        )
        .where(_S.c.connection_id == connection_id, _S.c.object == object, rec.c.is_deleted.is_(False))
        .order_by(_S.c.external_id)
    )
    yield from conn.execute(query)


@dataclass(frozen=True)
class _Row:
    """A score row with what was last written for its record."""

    score: Any
    written: dict[str, Any] | None
    next_attempt_at: datetime | None
    gave_up: bool | None
    last_error_code: str | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.score, name)


def _rows_of(conn: sa.Connection, connection_id: int, object: str, external_ids: Sequence[str]) -> Iterator[Any]:
    """The same rows for a few records, as one lookup by key per table and chunk.

    A join here is planned on statistics that lag behind a busy write-back (a table taken for a
    row or two): PostgreSQL then loops over every state row of the object for each score. Lookups
    by the unique keys cost the same whatever the statistics say.
    """
    rec = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    wanted = sorted(set(external_ids))
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start : start + LOOKUP_CHUNK]
        live = set(by_ids(conn, rec, [rec.c.external_id], connection_id, chunk, rec.c.is_deleted.is_(False)).scalars())
        state = {r.external_id: r for r in by_ids(
            conn, _W, [_W.c.external_id, _W.c.written, _W.c.next_attempt_at, _W.c.gave_up, _W.c.last_error_code],
            connection_id, chunk, _W.c.object == object)}
        scores = by_ids(conn, _S, list(_S.c), connection_id, chunk, _S.c.object == object).all()
        for row in sorted(scores, key=lambda r: r.external_id):
            if row.external_id not in live:
                continue
            st = state.get(row.external_id)
            yield _Row(row, st.written if st else None, st.next_attempt_at if st else None,
                       st.gave_up if st else None, st.last_error_code if st else None)


def _state_rows(
    connection_id: int,
    object: str,
    items: Sequence[WriteItem],
    targets: dict[str, str],
    results: Sequence[WriteResult],
    failures: dict[str, int],
    now: datetime,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows for writeback_state of the items sent and their results: (written ones, failed ones)."""
    by_id = {item.external_id: item for item in items}
    key_of = {crm_field: key for key, crm_field in targets.items()}
    ok_rows, failed_rows = [], []
    for res in results:
        item = by_id.get(res.external_id)
        if item is None:
            continue
        base = dict(connection_id=connection_id, object=object, external_id=res.external_id)
        if res.ok:
            written = _jsonable({key_of.get(f, f): v for f, v in item.values.items()})
            ok_rows.append({**base, "written": written, "written_at": now, "failure_count": 0, "last_error": None,
                            "last_error_code": None, "next_attempt_at": None, "gave_up": False})
        else:
            count = failures.get(res.external_id, 0) + 1
            give_up = not res.retriable or count >= MAX_ATTEMPTS or (res.error_code or "") in PERMANENT_CODES
            failed_rows.append({**base, "written": {}, "failure_count": count,
                                "last_error": (res.message or res.error_code or "")[:2000],
                                "last_error_code": res.error_code, "gave_up": give_up,
                                "next_attempt_at": None if give_up else now + BACKOFF_BASE * (2 ** (count - 1))})
    return ok_rows, failed_rows


def _send(adapter: Adapter, object: str, chunk: Sequence[WriteItem], verify: bool) -> tuple[list[WriteResult], int]:
    """Write a chunk; with `verify`, first skip the records the CRM already holds (results, how many skipped)."""
    check = getattr(adapter, "already_written", None)
    held = set(check(object, chunk)) if verify and check is not None else set()
    todo = [i for i in chunk if i.external_id not in held]
    results = list(adapter.write(object, todo)) if todo else []
    return results + [WriteResult(i.external_id, ok=True) for i in chunk if i.external_id in held], len(held)


def _field_refusal(results: Sequence[WriteResult]) -> WriteResult | None:
    """A refusal for a target field: every record of the plan carries the same fields, so it meets it too."""
    return next((r for r in results if not r.ok and not r.retriable and r.error_code in FIELD_CODES), None)


def execute(engine: Engine, connection_id: int, adapter: Adapter, p: Plan, targets: dict[str, str], *,
            verify: bool = False, repair: bool = False, refused: WriteResult | None = None) -> dict[str, Any]:
    """Send a plan through the adapter and record per-record outcomes; returns counts and failures.

    `verify` (after a write-back that stopped midway): records whose values the CRM already holds,
    because the stopped run wrote them but could not record it, are recorded instead of sent again.
    Once a target field is refused (`refused`, or in the CRM's answer), the rest is not sent: each
    record is recorded with that refusal.
    """
    keys = ("connection_id", "object", "external_id")
    written = failed = confirmed = 0
    failures: list[dict[str, Any]] = []
    size = int(getattr(adapter, "write_batch", 0) or BATCH)
    for start in range(0, len(p.items), size):
        chunk = p.items[start : start + size]
        if refused is not None:
            results, held = [replace(refused, external_id=i.external_id) for i in chunk], 0
        else:
            results, held = _send(adapter, p.object, chunk, verify)
            refused = _field_refusal(results)
        confirmed += held
        with engine.begin() as conn:
            rows = by_ids(conn, _W, [_W.c.external_id, _W.c.failure_count], connection_id,
                          [i.external_id for i in chunk], _W.c.object == p.object)
            prior: dict[str, int] = {r.external_id: r.failure_count for r in rows}
            ok_rows, failed_rows = _state_rows(connection_id, p.object, chunk, targets, results, prior, utcnow())
            upsert(conn, WritebackState, ok_rows, keys=keys)
            # A failure keeps what was last written successfully: `written` is not overwritten.
            upsert(conn, WritebackState, failed_rows, keys=keys,
                   update=["failure_count", "last_error", "last_error_code", "gave_up", "next_attempt_at"])
            # a record merged away passed our values on to its survivor: what we last wrote there no longer holds
            landed = sorted({r.landed_on for r in results if r.landed_on})
            if landed:
                conn.execute(sa.delete(_W).where(_W.c.connection_id == connection_id, _W.c.object == p.object,
                                                 _W.c.external_id.in_(landed)))
        if landed and not repair:  # put the survivors' own scores back at once
            again = execute(engine, connection_id, adapter, plan(engine, connection_id, p.object, targets,
                                                                   external_ids=landed), targets, repair=True)
            written, failed = written + again["written"], failed + again["failed"]
            failures += again["failures"]
        written += len(ok_rows)
        failed += len(failed_rows)
        failures += [
            {"id": r["external_id"], "object": p.object, "code": r["last_error_code"], "message": r["last_error"],
             "gave_up": r["gave_up"], "waits_for_fix": r["gave_up"] and r["last_error_code"] in FIELD_CODES}
            for r in failed_rows
        ]
    if written + failed >= ANALYZE_AFTER:
        with engine.begin() as conn:
            analyze(conn, _W.name)
    return {"written": written, "failed": failed, "failures": failures, "confirmed": confirmed}


def unwritable(adapter: Adapter, connection: Any, object: str, targets: dict[str, str]) -> WriteResult | None:
    """The refusal every record of `object` meets while a target field is missing or read-only (None: all writable)."""
    crm, noun = _CRM_NAMES.get(connection.kind, (connection.kind, "field"))
    have = {f.name.casefold(): f for f in adapter.describe(object)}
    problems: list[tuple[str, str]] = []
    for name in dict.fromkeys(targets.values()):
        found = have.get(name.casefold())
        if found is None:
            problems.append((FIELD_MISSING, f'{noun} "{name}" does not exist on {object} records in {crm}: '
                                            f"run `rapport provision {connection.name}` or fix the write mapping"))
        elif not found.updateable:
            problems.append((FIELD_READ_ONLY, f'{noun} "{name}" of {object} records is read-only in {crm}: '
                                              f"map the score to a {noun} that can be written (fix the write mapping)"))
    if not problems:
        return None
    return WriteResult("", ok=False, error_code=problems[0][0], message="; ".join(m for _, m in problems))


def release_held(engine: Engine, connection_id: int, object: str) -> int:
    """Let the records held for a field refusal be written again (their field is writable now)."""
    with engine.begin() as conn:
        return conn.execute(
            sa.update(_W)
            .where(_W.c.connection_id == connection_id, _W.c.object == object, _W.c.gave_up.is_(True),
                   _W.c.last_error_code.in_(sorted(FIELD_CODES)))
            .values(gave_up=False, next_attempt_at=None, failure_count=0)
        ).rowcount


def summary(p: Plan) -> dict[str, Any]:
    """A dry-run report: counts by field, tier changes, score distribution before and after."""

    def histogram(values: list[float]) -> dict[str, int]:
        bands = Counter(f"{int(min(v, 99) // 10) * 10:02d}-{int(min(v, 99) // 10) * 10 + 9:02d}" for v in values)
        return dict(sorted(bands.items()))

    return {
        "object": p.object,
        "to_write": len(p.items),
        "unchanged": p.unchanged,
        "waiting_for_retry": p.waiting,
        "waiting_for_fix": p.held,
        "fields": dict(p.fields_changed),
        "tier_changes": dict(p.tier_changes),
        "before": histogram(p.before),
        "after": histogram(p.after),
    }


def targets_for(engine: Engine, connection: Any, defaults: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, str]]:
    """Score key -> CRM field per scored object: the connection's write mapping (or `defaults`)."""
    write = defaults if defaults is not None else load_mapping(engine, connection.id, connection.kind).write
    return {obj: dict(write.get(obj, {})) for obj in SCORED_OBJECTS}


def stopped_midway(engine: Engine, connection_id: int) -> bool:
    """True when the connection's last write-back died with its worker (left running, or failed as stopped).

    Call it holding the write-back lock: a run still marked running then has no live worker.
    """
    with engine.connect() as conn:
        last = conn.execute(
            sa.select(_R.c.status, _R.c.error)
            .where(_R.c.connection_id == connection_id, _R.c.kind == "writeback")
            .order_by(_R.c.id.desc())
            .limit(1)
        ).first()
    return last is not None and (last.status == "running" or last.error == STOPPED)


def writeback_connection(
    engine: Engine,
    settings: Any,
    connection_id: int,
    *,
    dry_run: bool = False,
    adapter: Adapter | None = None,
    external_ids: Mapping[str, Sequence[str]] | None = None,
    defaults: dict[str, dict[str, str]] | None = None,
    trigger: str = "manual",
    job_id: str | None = None,
) -> dict[str, Any]:
    """Write changed scores of one connection (or only `external_ids` per object); dry-run writes nothing."""
    ct = Connection.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        connection = conn.execute(sa.select(ct).where(ct.c.id == connection_id)).one()
    targets = targets_for(engine, connection, defaults)

    def plan_of(obj: str) -> Plan:
        named = external_ids.get(obj) if external_ids is not None else None
        return plan(engine, connection_id, obj, targets[obj], external_ids=named)

    plans = [plan_of(obj) for obj in SCORED_OBJECTS]
    if dry_run:
        return {"dry_run": True, "objects": [summary(p) for p in plans]}
    if not any(p.items or p.held for p in plans):
        run_id = open_run(engine, connection_id, "writeback", trigger=trigger, job_id=job_id)
        close_run(engine, run_id, "succeeded", counts={"written": 0, "unchanged": sum(p.unchanged for p in plans)})
        return {"run_id": run_id, "written": 0, "failed": 0, "api_calls": 0, "failures": []}
    if adapter is None:
        from connector.connections import open_adapter

        adapter = open_adapter(engine, settings, connection_id)
    verify = stopped_midway(engine, connection_id)
    run_id = open_run(engine, connection_id, "writeback", trigger=trigger, job_id=job_id)
    calls = adapter.api_calls
    totals: dict[str, Any] = {"written": 0, "failed": 0, "failures": []}
    counts: dict[str, Any] = {}
    to_fix: dict[str, tuple[int, str]] = {}  # object -> (records waiting, what to fix)
    try:
        for p in plans:
            refused = None
            if p.held:  # records wait for a field to be fixed: one look at the fields says whether it was
                refused = unwritable(adapter, connection, p.object, targets[p.object])
                if refused is None:
                    release_held(engine, connection_id, p.object)
                    p = plan_of(p.object)
            outcome = execute(engine, connection_id, adapter, p, targets[p.object], verify=verify, refused=refused)
            counts[p.object] = {"written": outcome["written"], "failed": outcome["failed"],
                                "unchanged": p.unchanged, "waiting_for_retry": p.waiting,
                                "waiting_for_fix": p.held, "already_in_crm": outcome["confirmed"]}
            totals["written"] += outcome["written"]
            totals["failed"] += outcome["failed"]
            totals["failures"] += outcome["failures"]
            held = [f for f in outcome["failures"] if f["waits_for_fix"]]
            why = held[0]["message"] if held else refused.message if refused else None
            if why:
                to_fix[p.object] = (len(held) + p.held, why)
    except RapportError as exc:
        status = "paused" if isinstance(exc, BudgetExhausted) else "failed"
        close_run(engine, run_id, status, counts=counts, api_calls=adapter.api_calls - calls,
                  errors=totals["failures"], error=str(exc))
        raise
    # records held for a field are not written by any run until it is fixed: say what to fix
    error = "; ".join(f"{obj}: {n} record(s) wait for this fix: {why}" for obj, (n, why) in to_fix.items()) or None
    if error:
        error += " (the first write-back after the fix writes them)"
    status = "failed" if to_fix and not totals["written"] else "partial" if totals["failed"] or to_fix else "succeeded"
    close_run(engine, run_id, status, counts=counts, api_calls=adapter.api_calls - calls, errors=totals["failures"],
              error=error)
    return {"run_id": run_id, **totals, "api_calls": adapter.api_calls - calls, "status": status, "error": error}
