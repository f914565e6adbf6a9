"""Loading scoring features from the unified tables with set-based SQL (one GROUP BY per table).

Point in time: with `point_in_time=True` only what was visible at `as_of` counts — records created
after it are ignored, and a deal or case closed after it counts as still open. Without it (live
scoring), a record marked closed is closed even if its close date lies ahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection as SAConnection

from connector.model import RECORD_MODELS, UTCDateTime
from enrichment.features import AccountFeatures, ContactFeatures

EPOCH_JULIAN = 2440587.5
_ACC, _CON, _DEAL, _CASE, _ACT = (RECORD_MODELS[o].__table__ for o in ("account", "contact", "deal", "case", "activity"))  # type: ignore[attr-defined]


def days_since_epoch(conn: SAConnection | str, col: Any) -> Any:
    """Days since 1970-01-01 as a float, in the dialect's own date arithmetic."""
    if (conn if isinstance(conn, str) else conn.dialect.name) == "sqlite":
        return sa.func.julianday(col) - EPOCH_JULIAN
    if isinstance(getattr(col, "type", None), sa.Date) and not isinstance(col.type, sa.DateTime):
        col = sa.cast(col, sa.DateTime(timezone=False))  # a date's midnight, not the session time zone's
    # date_part gives a double; EXTRACT gives numeric since PostgreSQL 14, several times slower per row
    return sa.func.date_part("epoch", col, type_=sa.Float) / 86400.0


def live_rows(t: Any, connection_id: Any) -> Any:
    """Rows of the connection that are neither deleted nor merged away."""
    return sa.and_(t.c.connection_id == connection_id, t.c.is_deleted.is_(False), t.c.merged_into.is_(None))


def count_if(cond: Any) -> Any:
    """Rows of the group meeting `cond` (an aggregate FILTER: on SQLite about a fifth cheaper per row
    than summing a CASE)."""
    return sa.func.count().filter(cond)


def lookup_of(ids: np.ndarray) -> dict[str, int]:
    """External id -> position, for `index_of` (a dict lookup beats searching sorted strings)."""
    return {k: i for i, k in enumerate(np.asarray(ids).tolist())}


def index_of(ids: np.ndarray | dict[str, int], keys: Any) -> tuple[np.ndarray, np.ndarray]:
    """Positions of keys among the ids (an array or its `lookup_of`), and a mask of the keys found there."""
    lookup = ids if isinstance(ids, dict) else lookup_of(ids)
    pos = np.fromiter(map(lookup.get, keys, repeat(-1)), dtype=np.int64, count=len(keys))  # no Python frame per key
    found = pos >= 0
    return np.where(found, pos, 0), found


def _scatter(n: int, pos: np.ndarray, found: np.ndarray, values: Sequence[Any], fill: float) -> np.ndarray:
    out = np.full(n, fill, dtype=float)
    vals = np.array(values, dtype=float)  # None becomes NaN
    out[pos[found]] = vals[found]
    return out


def columns(rows: Sequence[Any], width: int) -> list[list[Any]]:
    """Rows transposed into columns, one list each (empty when there is no row).

    One `itemgetter` pass per column: `zip(*rows)` makes an iterator per row and took twice as long
    on a million rows."""
    return [list(map(itemgetter(j), rows)) for j in range(width)]


WINDOWS = ("value_days", "frequency_days", "activity_days", "renewal_days", "loss_days", "breadth_days", "case_days",
           "quality_days", "backlog_age_days")


class _Scope:
    """The as-of moment, mode and (optionally) the accounts a load is limited to.

    Statements are built once per (query, dialect, mode) with bind parameters for the connection, the
    dates and the account list, and reused: building them costs more than running them for one account."""

    def __init__(self, conn: SAConnection, connection_id: int, as_of: datetime, point_in_time: bool,
                 account_ids: Sequence[str] | None, windows: dict[str, int]) -> None:
        self.conn, self.pit, self.dialect = conn, point_in_time, conn.dialect.name
        self.day = as_of.timestamp() / 86400.0
        self.scoped = account_ids is not None
        self.values: dict[str, Any] = {"cid": connection_id, "as_of": as_of, "day": self.day,
                                       "ids": list(account_ids or [])}
        self.values |= {f"ts_{k}": as_of - timedelta(days=windows[k]) for k in WINDOWS}
        self.values |= {f"date_{k}": (as_of - timedelta(days=windows[k])).date() for k in WINDOWS}
        self.values["as_of_date"] = as_of.date()
        self.cid = sa.bindparam("cid", type_=sa.Integer)
        self.as_of = sa.bindparam("as_of", type_=UTCDateTime())
        self.as_of_date = sa.bindparam("as_of_date", type_=sa.Date)

    # Conditions compare the stored values with bound dates, so the database does no date arithmetic per
    # row; days are computed only from the aggregated values.
    def since(self, window: str) -> Any:
        """The start of a window as a bound timestamp, e.g. since("case_days")."""
        return sa.bindparam(f"ts_{window}", type_=UTCDateTime())

    def since_date(self, window: str) -> Any:
        """The start of a window as a bound date (for date columns such as a deal's close date)."""
        return sa.bindparam(f"date_{window}", type_=sa.Date)

    def date_of(self, col: Any) -> Any:
        """The UTC calendar date of a timestamp column."""
        if self.dialect == "sqlite":
            return sa.func.date(col)
        return sa.cast(sa.func.timezone("UTC", col), sa.Date)

    def visible(self, t: Any, col: Any, *, scan: bool = False) -> Any:
        """Live rows of table t, created by as_of when point-in-time.

        `scan`: for a whole-portfolio load on SQLite, read the table in storage order. Its planner
        otherwise follows an index on connection_id into the wide rows (raw CRM JSON), one random
        page read per row, which costs twice the CPU of a scan; "+ 0" keeps the index out of use.
        A scan loses only when the database holds several connections of similar size."""
        cond = live_rows(t, self.cid)
        if scan and not self.scoped and self.dialect == "sqlite":
            cond = sa.and_((t.c.connection_id + 0) == self.cid, t.c.is_deleted.is_(False), t.c.merged_into.is_(None))
        return sa.and_(cond, sa.or_(col.is_(None), col <= self.as_of)) if self.pit else cond

    def by_account(self, t: Any) -> Any:
        """Limit to the scoped accounts (all when unscoped)."""
        return t.c.account_external_id.in_(sa.bindparam("ids", expanding=True)) if self.scoped else sa.true()

    def run(self, name: str, build: Any) -> Any:
        """Execute the statement `build(self)` (cached per dialect and mode) and fetch every row."""
        key = (name, self.dialect, self.pit, self.scoped)
        stmt = _STATEMENTS.get(key)
        if stmt is None:
            stmt = _STATEMENTS[key] = build(self)
        result = self.conn.execute(stmt, self.values)
        try:  # plain DBAPI tuples: every column is a plain number or text, so no result processing is needed
            return result.cursor.fetchall()  # type: ignore[attr-defined]
        finally:
            result.close()


_STATEMENTS: dict[tuple[str, str, bool, bool], Any] = {}


def _accounts_stmt(s: _Scope) -> Any:
    q = sa.select(_ACC.c.external_id, days_since_epoch(s.dialect, _ACC.c.created_at)).where(s.visible(_ACC, _ACC.c.created_at))
    return q.where(_ACC.c.external_id.in_(sa.bindparam("ids", expanding=True))) if s.scoped else q


def _accounts(s: _Scope) -> tuple[np.ndarray, np.ndarray]:
    raw_ids, created = columns(s.run("accounts", _accounts_stmt), 2)
    ids = np.array(raw_ids, dtype=str)
    order = np.argsort(ids, kind="stable")
    return ids[order], s.day - np.array(created, dtype=float)[order]


def _deals(s: _Scope) -> Any:
    """One narrow row per deal: account, amount, closed, won, close day, renewal; aggregated in numpy."""
    d = _DEAL.c
    close = sa.func.coalesce(d.close_date, s.date_of(d.created_at))
    renewal = sa.func.lower(sa.func.coalesce(d.deal_type, "")) == "renewal"
    return sa.select(
        d.account_external_id, sa.func.coalesce(d.amount, 0.0), sa.type_coerce(d.is_closed, sa.Integer),
        sa.type_coerce(d.is_won, sa.Integer), days_since_epoch(s.dialect, close), sa.type_coerce(renewal, sa.Integer),
    ).where(s.visible(_DEAL, d.created_at, scan=True), d.account_external_id.is_not(None), s.by_account(_DEAL))


def _contacts(s: _Scope, account_ids: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Contacts sorted by id: (ids, index of their account or -1, created day, own last-activity stamp day)."""
    def build(s: _Scope) -> Any:
        c = _CON.c
        stamp = sa.case((c.last_activity_at <= s.as_of, days_since_epoch(s.dialect, c.last_activity_at)))
        return sa.select(c.external_id, c.account_external_id, days_since_epoch(s.dialect, c.created_at), stamp).where(
            s.visible(_CON, c.created_at), s.by_account(_CON))

    cids, accs, created, stamps = columns(s.run("contacts", build), 4)
    ids = np.array(cids, dtype=str)
    order = np.argsort(ids, kind="stable")
    pos, found = index_of(account_ids, np.array(accs, dtype=object)[order].tolist() if len(ids) else [])
    return (ids[order], np.where(found, pos, -1), np.array(created, dtype=float)[order] if len(ids) else np.zeros(0),
            np.array(stamps, dtype=float)[order] if len(ids) else np.zeros(0))


def _group_index(account_ids: dict[str, int], contact_ids: dict[str, int], contact_account: np.ndarray,
                 accs: Sequence[Any], whos: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """For grouped rows: the account index (the row's own, else its contact's) and the contact index (-1: none)."""
    apos, afound = index_of(account_ids, accs)
    cpos, cfound = index_of(contact_ids, whos)
    contact = np.where(cfound, cpos, -1)
    via_contact = np.where(cfound, contact_account[cpos] if len(contact_account) else -1, -1)
    return np.where(afound, apos, via_contact), contact


def _activities(s: _Scope) -> Any:
    """Activities grouped by (account, contact): last day, count in the activity window, count in the breadth window."""
    a = _ACT.c
    q = sa.select(a.account_external_id, a.contact_external_id, days_since_epoch(s.dialect, sa.func.max(a.occurred_at)),
                  count_if(a.occurred_at > s.since("activity_days")), count_if(a.occurred_at > s.since("breadth_days"))).where(
        live_rows(_ACT, s.cid), a.occurred_at <= s.as_of, s.by_account(_ACT))
    return q.group_by(a.account_external_id, a.contact_external_id)


def _cases(s: _Scope) -> Any:
    """One narrow row per case (opened/closed as days since 1970); aggregated in numpy."""
    k = _CASE.c
    return sa.select(
        k.account_external_id, k.contact_external_id, sa.func.lower(sa.func.coalesce(k.priority, "none")),
        days_since_epoch(s.dialect, sa.func.coalesce(k.opened_at, k.created_at)), days_since_epoch(s.dialect, k.closed_at),
        sa.type_coerce(k.is_closed, sa.Integer), sa.type_coerce(k.is_escalated, sa.Integer),
        sa.func.coalesce(k.reopen_count, 0), k.satisfaction,
    ).where(s.visible(_CASE, k.created_at, scan=True), s.by_account(_CASE))


def _sum_by(index: np.ndarray, values: Any, n: int) -> np.ndarray:
    ok = index >= 0
    return np.bincount(index[ok], weights=np.array(values, dtype=float)[ok], minlength=n)[:n] if n else np.zeros(0)


def _max_by(index: np.ndarray, values: Any, n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    ok = index >= 0
    np.fmax.at(out, index[ok], np.array(values, dtype=float)[ok])
    return out


def load_features(conn: SAConnection, connection_id: int, params: dict[str, Any], *, as_of: datetime,
                  point_in_time: bool = False, account_ids: Sequence[str] | None = None) -> tuple[AccountFeatures, ContactFeatures]:
    """Account and contact features of the connection (sorted by external id) from one scan per table.

    Activities and cases count toward their own account, or their contact's account when they have none.
    """
    w, high = params["windows"], set(params["experience"]["high_priorities"])
    s = _Scope(conn, connection_id, as_of, point_in_time, account_ids, w)
    ids, age = _accounts(s)
    n = len(ids)
    acc_lookup = lookup_of(ids)
    con_ids, con_acc, con_created, con_stamp = _contacts(s, acc_lookup)
    con_lookup = lookup_of(con_ids)
    m = len(con_ids)
    cols: dict[str, np.ndarray] = {"age_days": age, "contacts": _sum_by(con_acc, np.ones(m), n)}

    acc_d, *numbers = columns(s.run("deals", _deals), 6)
    amount, is_closed, is_won, close, renewal = (np.asarray(c, dtype=float) for c in numbers)
    pos, found = index_of(acc_lookup, acc_d)
    d_i = np.where(found, pos, -1)
    close = close.astype(float)
    with np.errstate(invalid="ignore"):  # a deal without any date is closed only when not point-in-time
        closed = is_closed.astype(bool) & ((close <= s.day) | (not point_in_time))
    won, lost, is_renewal = closed & is_won.astype(bool), closed & ~is_won.astype(bool), renewal.astype(bool)
    amount = np.nan_to_num(amount.astype(float))

    def since(window: str) -> np.ndarray:
        return close > s.day - w[window]

    cols["won_amount"] = _sum_by(np.where(won & since("value_days"), d_i, -1), amount, n)
    cols["won_deals"] = _sum_by(np.where(won & since("frequency_days"), d_i, -1), np.ones(len(d_i)), n)
    cols["days_since_won"] = s.day - _max_by(np.where(won, d_i, -1), close, n)
    cols["days_since_first_won"] = s.day + _max_by(np.where(won, d_i, -1), -close, n)
    cols["open_pipeline"] = _sum_by(np.where(~closed, d_i, -1), amount, n)
    cols["open_deals"] = _sum_by(np.where(~closed, d_i, -1), np.ones(len(d_i)), n)
    cols["renewals_won"] = _sum_by(np.where(won & is_renewal & since("renewal_days"), d_i, -1), np.ones(len(d_i)), n)
    cols["renewals_lost"] = _sum_by(np.where(lost & is_renewal & since("renewal_days"), d_i, -1), np.ones(len(d_i)), n)
    cols["recent_losses"] = _sum_by(np.where(lost & since("loss_days"), d_i, -1), np.ones(len(d_i)), n)

    accs, whos, last, in_activity, in_breadth = columns(s.run("activities", _activities), 5)
    acc_i, act_con = _group_index(acc_lookup, con_lookup, con_acc, accs, whos)
    con_last = np.fmax(con_stamp, _max_by(act_con, last, m))
    engaged = (con_last > s.day - w["breadth_days"]).astype(float)
    cols["days_since_activity"] = s.day - np.fmax(_max_by(acc_i, last, n), _max_by(con_acc, con_stamp, n))
    cols["activities"] = _sum_by(acc_i, in_activity, n)
    cols["engaged_contacts"] = _sum_by(con_acc, engaged, n)

    acc_k, con_k, prio, opened, closed_day, k_closed, escalated, reopens, sat = columns(s.run("cases", _cases), 9)
    acc_i, con_i = _group_index(acc_lookup, con_lookup, con_acc, acc_k, con_k)
    opened_d, closed_d = np.array(opened, dtype=float), np.array(closed_day, dtype=float)
    rating = np.array(sat, dtype=float)
    with np.errstate(invalid="ignore"):
        shut = np.array(k_closed, dtype=bool) & ((not point_in_time) | np.isnan(closed_d) | (closed_d <= s.day))
        seen = opened_d <= s.day
        load = seen & (opened_d > s.day - w["case_days"])
        # the quality window applies to closed history: a case open now counts however long ago it was opened
        quality = seen & ((opened_d > s.day - w["quality_days"]) | ~shut)
        still_open = seen & ~shut
        stale = still_open & (opened_d <= s.day - w["backlog_age_days"])
        timed = quality & shut & (closed_d >= opened_d)
        rated = quality & shut & np.isfinite(rating)
    prios = tuple(sorted(set(prio)))  # a handful of distinct priorities: code each row by a dict lookup
    p_i = np.fromiter(map({p: i for i, p in enumerate(prios)}.__getitem__, prio), dtype=np.int64, count=len(prio))
    high_row = np.array([p in high for p in prios], dtype=bool)[p_i] if prios else np.zeros(0, dtype=bool)
    one = np.ones(len(acc_i))

    def by_acc(mask: np.ndarray, values: Any = one) -> np.ndarray:
        return _sum_by(np.where(mask, acc_i, -1), values, n)

    cols |= {"cases": by_acc(load), "quality_cases": by_acc(quality), "closed_cases": by_acc(quality & shut),
             "escalated": by_acc(quality & np.array(escalated, dtype=bool)),
             "reopens": by_acc(quality & shut, np.array(reopens, dtype=float)),
             "csat_sum": by_acc(rated, np.nan_to_num(rating)), "csat_n": by_acc(rated),
             "open_high": by_acc(still_open & high_row), "open_high_stale": by_acc(stale & high_row)}
    res_n, res_hours = np.zeros((n, len(prios))), np.zeros((n, len(prios)))
    ok = timed & (acc_i >= 0)
    if n and ok.any():
        cell = acc_i[ok] * len(prios) + p_i[ok]  # (account, priority) flattened
        size = n * len(prios)
        res_n = np.bincount(cell, minlength=size).reshape(n, len(prios)).astype(np.float64)
        res_hours = np.bincount(cell, weights=(closed_d[ok] - opened_d[ok]) * 24.0, minlength=size).reshape(
            n, len(prios)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        res_hours = np.where(res_n > 0, res_hours / res_n, np.nan)
    accounts = AccountFeatures(ids=ids, cols=cols, priorities=prios, res_n=res_n, res_hours=res_hours)

    contacts = ContactFeatures(ids=con_ids, account=con_acc, cols={
        "age_days": s.day - con_created,
        "days_since_activity": s.day - con_last,
        "activities": _sum_by(act_con, in_breadth, m),
        "cases": _sum_by(np.where(load, con_i, -1), one, m),
        "open_high": _sum_by(np.where(still_open & high_row, con_i, -1), one, m),
    })
    return accounts, contacts


def load_account_features(conn: SAConnection, connection_id: int, params: dict[str, Any], *, as_of: datetime,
                          point_in_time: bool = False, account_ids: Sequence[str] | None = None) -> AccountFeatures:
    """Only the account features (see `load_features`)."""
    return load_features(conn, connection_id, params, as_of=as_of, point_in_time=point_in_time, account_ids=account_ids)[0]
