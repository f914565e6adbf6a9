"""Loading scoring features from the unified tables with set-based SQL (one GROUP BY per table).

Point in time: with `point_in_time=True` only what was visible at `as_of` counts — records created
after it are ignored, and a deal or case closed after it counts as still open. Without it (live
scoring), a record marked closed is closed even if its close date lies ahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection as SAConnection

from connector.model import RECORD_MODELS
from enrichment.features import AccountFeatures, ContactFeatures

EPOCH_JULIAN = 2440587.5
_ACC, _CON, _DEAL, _CASE, _ACT = (RECORD_MODELS[o].__table__ for o in ("account", "contact", "deal", "case", "activity"))  # type: ignore[attr-defined]


def days_since_epoch(conn: SAConnection, col: Any) -> Any:
    """Days since 1970-01-01 as a float, in the dialect's own date arithmetic."""
    if conn.dialect.name == "sqlite":
        return sa.func.julianday(col) - EPOCH_JULIAN
    return sa.cast(sa.extract("epoch", col), sa.Float) / 86400.0


def live_rows(t: Any, connection_id: int) -> Any:
    return sa.and_(t.c.connection_id == connection_id, t.c.is_deleted.is_(False), t.c.merged_into.is_(None))


def sum_if(cond: Any, value: Any = 1) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((cond, value), else_=0)), 0)


def index_of(sorted_ids: np.ndarray, keys: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of keys in the sorted ids, and a mask of the keys found there."""
    k = np.array(keys, dtype=str)
    if not len(sorted_ids) or not len(k):
        return np.zeros(len(k), dtype=np.int64), np.zeros(len(k), dtype=bool)
    pos = np.searchsorted(sorted_ids, k).clip(0, len(sorted_ids) - 1)
    return pos, sorted_ids[pos] == k


def _scatter(n: int, pos: np.ndarray, found: np.ndarray, values: Sequence[Any], fill: float) -> np.ndarray:
    out = np.full(n, fill, dtype=float)
    vals = np.array(values, dtype=float)  # None becomes NaN
    out[pos[found]] = vals[found]
    return out


def columns(rows: Sequence[Any], width: int) -> list[tuple[Any, ...]]:
    """Rows transposed into columns (empty tuples when there is no row)."""
    return list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]


class _Scope:
    """The as-of moment, mode and (optionally) the accounts a load is limited to."""

    def __init__(self, conn: SAConnection, connection_id: int, as_of: datetime, point_in_time: bool,
                 account_ids: Sequence[str] | None) -> None:
        self.conn, self.cid, self.as_of, self.pit = conn, connection_id, as_of, point_in_time
        self.day = as_of.timestamp() / 86400.0
        self.account_ids = list(account_ids) if account_ids is not None else None

    def visible(self, t: Any, col: Any) -> Any:
        """Live rows of table t, created by as_of when point-in-time."""
        cond = live_rows(t, self.cid)
        return sa.and_(cond, sa.or_(col.is_(None), col <= self.as_of)) if self.pit else cond

    def by_account(self, t: Any) -> Any:
        """Limit to the scoped accounts (all when unscoped)."""
        return sa.true() if self.account_ids is None else t.c.account_external_id.in_(self.account_ids)


def _accounts(s: _Scope) -> tuple[np.ndarray, np.ndarray]:
    q = sa.select(_ACC.c.external_id, days_since_epoch(s.conn, _ACC.c.created_at)).where(s.visible(_ACC, _ACC.c.created_at))
    if s.account_ids is not None:
        q = q.where(_ACC.c.external_id.in_(s.account_ids))
    ids, created = columns(s.conn.execute(q).all(), 2)
    ids = np.array(ids, dtype=str)
    order = np.argsort(ids, kind="stable")
    return ids[order], s.day - np.array(created, dtype=float)[order]


def _deals(s: _Scope, w: dict[str, int]) -> Any:
    d = _DEAL.c
    close = sa.func.coalesce(days_since_epoch(s.conn, d.close_date), days_since_epoch(s.conn, d.created_at))
    closed = d.is_closed.is_(True) if not s.pit else sa.and_(d.is_closed.is_(True), close <= s.day)
    won, lost = sa.and_(closed, d.is_won.is_(True)), sa.and_(closed, d.is_won.is_(False))
    amount = sa.func.coalesce(d.amount, 0.0)
    renewal = sa.func.lower(sa.func.coalesce(d.deal_type, "")) == "renewal"

    def within(days: int) -> Any:
        return close > s.day - days

    q = sa.select(
        d.account_external_id,
        sum_if(sa.and_(won, within(w["value_days"])), amount),
        sum_if(sa.and_(won, within(w["frequency_days"]))),
        sa.func.max(sa.case((won, close))),
        sa.func.min(sa.case((won, close))),
        sum_if(sa.not_(closed), amount),
        sum_if(sa.not_(closed)),
        sum_if(sa.and_(won, renewal, within(w["renewal_days"]))),
        sum_if(sa.and_(lost, renewal, within(w["renewal_days"]))),
        sum_if(sa.and_(lost, within(w["loss_days"]))),
    ).where(s.visible(_DEAL, d.created_at), d.account_external_id.is_not(None), s.by_account(_DEAL))
    return s.conn.execute(q.group_by(d.account_external_id)).all()


def _activity_rows(s: _Scope, w: dict[str, int]) -> Any:
    """Per account: last activity, engaged contacts (activities and contacts' own stamps), activity count."""
    a, c = _ACT.c, _CON.c
    occurred = days_since_epoch(s.conn, a.occurred_at)
    act = sa.select(a.account_external_id.label("acc"), a.contact_external_id.label("who"), occurred.label("day"),
                    sa.literal(1).label("logged")).where(
        live_rows(_ACT, s.cid), a.account_external_id.is_not(None), a.occurred_at <= s.as_of, s.by_account(_ACT))
    stamped = sa.select(c.account_external_id.label("acc"), c.external_id.label("who"),
                        days_since_epoch(s.conn, c.last_activity_at).label("day"), sa.literal(0).label("logged")).where(
        s.visible(_CON, c.created_at), c.account_external_id.is_not(None), c.last_activity_at <= s.as_of, s.by_account(_CON))
    both = sa.union_all(act, stamped).subquery()
    recent = both.c.day > s.day - w["breadth_days"]
    q = sa.select(both.c.acc, sa.func.max(both.c.day),
                  sa.func.count(sa.distinct(sa.case((sa.and_(recent, both.c.who.is_not(None)), both.c.who)))),
                  sum_if(sa.and_(both.c.logged == 1, both.c.day > s.day - w["activity_days"])))
    return s.conn.execute(q.group_by(both.c.acc)).all()


def _cases(s: _Scope, w: dict[str, int], high: list[str]) -> tuple[Any, Any]:
    k = _CASE.c
    opened = sa.func.coalesce(days_since_epoch(s.conn, k.opened_at), days_since_epoch(s.conn, k.created_at))
    closed_day = days_since_epoch(s.conn, k.closed_at)
    closed = k.is_closed.is_(True) if not s.pit else sa.and_(k.is_closed.is_(True), sa.or_(closed_day.is_(None), closed_day <= s.day))
    in_window = sa.and_(opened > s.day - w["case_days"], opened <= s.day)
    quality = sa.and_(opened > s.day - w["quality_days"], opened <= s.day)
    prio = sa.func.lower(sa.func.coalesce(k.priority, "none"))
    open_high = sa.and_(prio.in_(high), sa.not_(closed), opened <= s.day)
    base = sa.and_(s.visible(_CASE, k.created_at), k.account_external_id.is_not(None), s.by_account(_CASE))
    rated = sa.and_(quality, closed, k.satisfaction.is_not(None))
    agg = sa.select(
        k.account_external_id,
        sum_if(in_window),
        sum_if(quality),
        sum_if(sa.and_(quality, closed)),
        sum_if(sa.and_(quality, k.is_escalated.is_(True))),
        sum_if(sa.and_(quality, closed), sa.func.coalesce(k.reopen_count, 0)),
        sum_if(rated, k.satisfaction),
        sum_if(rated),
        sum_if(open_high),
        sum_if(sa.and_(open_high, opened <= s.day - w["backlog_age_days"])),
    ).where(base).group_by(k.account_external_id)
    hours = (closed_day - opened) * 24.0
    timed = sa.and_(quality, closed, closed_day.is_not(None), closed_day >= opened)
    res = sa.select(k.account_external_id, prio, sa.func.count(), sa.func.avg(hours)).where(base, timed).group_by(
        k.account_external_id, prio)
    return s.conn.execute(agg).all(), s.conn.execute(res).all()


def _contacts_per_account(s: _Scope) -> Any:
    c = _CON.c
    q = sa.select(c.account_external_id, sa.func.count()).where(
        s.visible(_CON, c.created_at), c.account_external_id.is_not(None), s.by_account(_CON))
    return s.conn.execute(q.group_by(c.account_external_id)).all()


def load_account_features(conn: SAConnection, connection_id: int, params: dict[str, Any], *, as_of: datetime,
                          point_in_time: bool = False, account_ids: Sequence[str] | None = None) -> AccountFeatures:
    """One row per account of the connection (sorted by external id), from six GROUP BY queries."""
    s = _Scope(conn, connection_id, as_of, point_in_time, account_ids)
    w, high = params["windows"], params["experience"]["high_priorities"]
    ids, age = _accounts(s)
    n = len(ids)
    cols: dict[str, np.ndarray] = {"age_days": age}

    def put(rows: Any, names: Sequence[str], fills: Sequence[float]) -> None:
        table = columns(rows, len(names) + 1)
        pos, found = index_of(ids, table[0])
        for name, values, fill in zip(names, table[1:], fills, strict=True):
            cols[name] = _scatter(n, pos, found, values, fill)

    put(_contacts_per_account(s), ["contacts"], [0.0])
    deal_rows = _deals(s, w)
    put(deal_rows, ["won_amount", "won_deals", "last_won", "first_won", "open_pipeline", "open_deals",
                    "renewals_won", "renewals_lost", "recent_losses"], [0, 0, np.nan, np.nan, 0, 0, 0, 0, 0])
    cols["days_since_won"] = s.day - cols.pop("last_won")
    cols["days_since_first_won"] = s.day - cols.pop("first_won")
    put(_activity_rows(s, w), ["last_activity", "engaged_contacts", "activities"], [np.nan, 0, 0])
    cols["days_since_activity"] = s.day - cols.pop("last_activity")
    case_rows, res_rows = _cases(s, w, high)
    put(case_rows, ["cases", "quality_cases", "closed_cases", "escalated", "reopens", "csat_sum", "csat_n", "open_high", "open_high_stale"],
        [0, 0, 0, 0, 0, 0, 0, 0, 0])
    prios = tuple(sorted({str(r[1]) for r in res_rows}))
    res_n, res_h = np.zeros((n, len(prios))), np.full((n, len(prios)), np.nan)
    if res_rows:
        acc_ids, prio, count, mean_hours = columns(res_rows, 4)
        pos, found = index_of(ids, acc_ids)
        col = np.searchsorted(np.array(prios, dtype=str), np.array(prio, dtype=str))
        res_n[pos[found], col[found]] = np.array(count, dtype=float)[found]
        res_h[pos[found], col[found]] = np.array(mean_hours, dtype=float)[found]
    return AccountFeatures(ids=ids, cols=cols, priorities=prios, res_n=res_n, res_hours=res_h)


def load_contact_features(conn: SAConnection, connection_id: int, params: dict[str, Any], account_ids: np.ndarray, *,
                          as_of: datetime, point_in_time: bool = False,
                          only_accounts: Sequence[str] | None = None) -> ContactFeatures:
    """One row per contact, with `account` indexing into `account_ids` (sorted, from the account load)."""
    s = _Scope(conn, connection_id, as_of, point_in_time, only_accounts)
    w, high = params["windows"], params["experience"]["high_priorities"]
    c, a, k = _CON.c, _ACT.c, _CASE.c
    stamp = sa.case((c.last_activity_at <= as_of, days_since_epoch(conn, c.last_activity_at)))
    rows = conn.execute(sa.select(c.external_id, c.account_external_id, days_since_epoch(conn, c.created_at), stamp).where(
        s.visible(_CON, c.created_at), s.by_account(_CON))).all()
    cids, acc_ids, created_days, stamp_days = columns(rows, 4)
    ids = np.array(cids, dtype=str)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    n = len(ids)
    pos, found = index_of(account_ids, np.array(acc_ids, dtype=object)[order] if n else [])
    account = np.where(found, pos, -1)
    created = np.array(created_days, dtype=float)[order] if n else np.zeros(0)
    last = np.array(stamp_days, dtype=float)[order] if n else np.zeros(0)
    occurred = days_since_epoch(conn, a.occurred_at)
    act = conn.execute(sa.select(a.contact_external_id, sa.func.max(occurred),
                                 sum_if(occurred > s.day - w["breadth_days"])).where(
        live_rows(_ACT, connection_id), a.contact_external_id.is_not(None), a.occurred_at <= as_of, s.by_account(_ACT),
    ).group_by(a.contact_external_id)).all()
    who, last_act, recent = columns(act, 3)
    apos, afound = index_of(ids, who)
    last = np.fmax(last, _scatter(n, apos, afound, last_act, np.nan))
    activities = _scatter(n, apos, afound, recent, 0.0)
    opened = sa.func.coalesce(days_since_epoch(conn, k.opened_at), days_since_epoch(conn, k.created_at))
    closed_day = days_since_epoch(conn, k.closed_at)
    closed = k.is_closed.is_(True) if not point_in_time else sa.and_(
        k.is_closed.is_(True), sa.or_(closed_day.is_(None), closed_day <= s.day))
    cases = conn.execute(sa.select(
        k.contact_external_id,
        sum_if(sa.and_(opened > s.day - w["case_days"], opened <= s.day)),
        sum_if(sa.and_(sa.func.lower(sa.func.coalesce(k.priority, "none")).in_(high), sa.not_(closed), opened <= s.day)),
    ).where(s.visible(_CASE, k.created_at), k.contact_external_id.is_not(None), s.by_account(_CASE)).group_by(
        k.contact_external_id)).all()
    raiser, raised, open_high = columns(cases, 3)
    cpos, cfound = index_of(ids, raiser)
    return ContactFeatures(ids=ids, account=account, cols={
        "age_days": s.day - created,
        "days_since_activity": s.day - last,
        "activities": activities,
        "cases": _scatter(n, cpos, cfound, raised, 0.0),
        "open_high": _scatter(n, cpos, cfound, open_high, 0.0),
    })
