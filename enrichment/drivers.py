"""Drivers: the top reasons behind a score, in plain words, with their point contributions.

The points are the exact additive contributions of `enrichment.combine`; the words describe the
raw facts behind each component (what a rep can check in the CRM).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from enrichment.combine import Breakdown
from enrichment.features import AccountFeatures, ContactFeatures

TOP = 3
MIN_POINTS = 0.5  # a reason worth less than half a point is not worth a rep's attention
MINUS = "\u2212"


def signed(points: float) -> str:
    """'+18' or '−12' (a true minus sign, as shown on the record)."""
    whole = int(round(abs(points)))
    return f"+{whole}" if points >= 0 else f"{MINUS}{whole}"


def money(amount: float) -> str:
    """$950, $24k, $1.2M."""
    a = abs(float(amount))
    if a >= 1e6:
        return f"${a / 1e6:.1f}M".replace(".0M", "M")
    if a >= 1e3:
        return f"${a / 1e3:.0f}k"
    return f"${a:.0f}"


@lru_cache(maxsize=4096)
def ago(days: float) -> str:
    """'today', '3 days', '5 months', '2.1 years'."""
    d = max(0, int(days))
    if d == 0:
        return "today"
    if d < 60:
        return f"{d} day{'s' if d != 1 else ''} ago"
    if d < 730:
        return f"{round(d / 30.44)} months ago"
    return f"{d / 365.25:.1f} years ago"


@lru_cache(maxsize=64)
def span(days: int) -> str:
    """A window in words: 'the last 12 months', 'the last 7 days'."""
    return f"the last {round(days / 30.44)} months" if days >= 60 else f"the last {days} days"


def plural(n: float, word: str, none: str | None = None) -> str:
    """'no case', '1 case', '3 cases'."""
    k = int(round(n)) if np.isfinite(n) else 0
    if k == 0:
        return none or f"no {word}"
    return f"{k} {word}{'' if k == 1 else 's'}"


def _years(days: float) -> str:
    return f"{days / 365.25:.1f} years" if days >= 365 else f"{round(days / 30.44)} months"


def account_texts(acc: AccountFeatures, exp_signals: dict[str, np.ndarray], parts: dict[str, np.ndarray],
                  params: dict[str, Any]) -> dict[str, Callable[[int], str]]:
    """One function per component: account index -> the facts behind that component."""
    c, w = acc.col, params["windows"]

    def value(i: int) -> str:
        won = c("won_amount")[i]
        return f"won {money(won)} in {span(w['value_days'])}" if won > 0 else f"nothing won in {span(w['value_days'])}"

    def frequency(i: int) -> str:
        return f"{plural(c('won_deals')[i], 'deal')} won in {span(w['frequency_days'])}"

    def recency(i: int) -> str:
        d = np.fmin(c("days_since_won")[i], c("days_since_activity")[i])
        if np.isfinite(d):
            return f"last won deal or activity {ago(d)}"
        age = c("age_days")[i]
        return f"no won deal or activity since the account was created {ago(age)}" if np.isfinite(age) else "no won deal or activity"

    def tenure(i: int) -> str:
        d = c("days_since_first_won")[i]
        return f"customer for {_years(d)}" if np.isfinite(d) and d > 0 else "not a customer yet (no deal won)"

    def breadth(i: int) -> str:
        return f"{plural(c('engaged_contacts')[i], 'contact')} engaged in {span(w['breadth_days'])}"

    def momentum(i: int) -> str:
        moves = {p: abs(parts[p][i] - 0.5) if np.isfinite(parts[p][i]) else -1.0 for p in parts}
        part = max(moves, key=lambda p: moves[p])
        if part == "pipeline":
            pipe = c("open_pipeline")[i]
            return f"{money(pipe)} in open deals" if pipe > 0 else "no open deal"
        if part == "renewals":
            return (f"{plural(c('renewals_won')[i], 'renewal')} won, {int(c('renewals_lost')[i])} lost "
                    f"in {span(w['renewal_days'])}")
        return f"{plural(c('recent_losses')[i], 'deal')} lost in {span(w['loss_days'])}"

    def load(i: int) -> str:
        n = c("cases")[i]
        if not n > 0:
            return f"no support case in {span(w['case_days'])}"
        return f"{-exp_signals['load'][i]:.1f} cases per contact per quarter ({plural(n, 'case')} in {span(w['case_days'])})"

    def speed(i: int) -> str:
        ratio = float(np.exp(-exp_signals["speed"][i]))
        if ratio >= 1:
            return f"cases resolved {ratio:.1f}× slower than usual for their priority"
        return f"cases resolved {1 / ratio:.1f}× faster than usual for their priority"

    def backlog(i: int) -> str:
        n, stale, age = c("open_high")[i], c("open_high_stale")[i], w["backlog_age_days"]
        if not n > 0:
            return "no high-priority case open"
        if stale >= n:
            return f"{plural(n, 'high-priority case')} open for over {age} days"
        return f"{plural(n, 'high-priority case')} open, {int(stale)} for over {age} days"

    def escalations(i: int) -> str:
        return f"{int(c('escalated')[i])} of {plural(c('cases')[i], 'case')} escalated"

    def reopens(i: int) -> str:
        return f"{plural(c('reopens')[i], 'reopen')} on {plural(c('closed_cases')[i], 'closed case')}"

    def satisfaction(i: int) -> str:
        n = c("csat_n")[i]
        return f"average satisfaction {c('csat_sum')[i] / n:.1f} over {plural(n, 'rating')}"

    return {f.__name__: f for f in (value, frequency, recency, tenure, breadth, momentum,
                                    load, speed, backlog, escalations, reopens, satisfaction)}


def top(score: str, b: Breakdown, i: int, texts: dict[str, Callable[[int], str]]) -> list[dict[str, Any]]:
    """The top reasons of record i by |points|, each {score, component, points, text}."""
    row = b.points[i]
    out = []
    for j in np.argsort(-np.abs(row), kind="stable")[:TOP]:
        p = float(row[j])
        if abs(p) < MIN_POINTS:
            break
        name = b.names[j]
        out.append({"score": score, "component": name, "points": round(p, 1), "text": f"{signed(p)} {texts[name](i)}"})
    return out


@lru_cache(maxsize=8192)
def _contact_text(component: str, value: float, window: int) -> str:
    if component == "engagement_recency":
        return f"last activity {ago(value)}" if value >= 0 else "no logged activity"
    if component == "engagement_volume":
        return f"{plural(value, 'activity', 'no activity').replace('activitys', 'activities')} in {span(window)}"
    if component == "own_load":
        return f"raised {plural(value, 'case')} in {span(window)}"
    return f"{plural(value, 'high-priority case')} of theirs open" if value > 0 else "no high-priority case of theirs open"


def contact_texts(con: ContactFeatures, params: dict[str, Any]) -> dict[str, Callable[[int], str]]:
    """Texts for a contact's own components (the account's part is described by the account's drivers)."""
    c, w = con.cols, params["windows"]
    since = np.nan_to_num(c["days_since_activity"], nan=-1.0)
    return {
        "engagement_recency": lambda i: _contact_text("engagement_recency", float(since[i]), 0),
        "engagement_volume": lambda i: _contact_text("engagement_volume", float(c["activities"][i]), w["breadth_days"]),
        "own_load": lambda i: _contact_text("own_load", float(c["cases"][i]), w["case_days"]),
        "own_backlog": lambda i: _contact_text("own_backlog", float(c["open_high"][i]), 0),
    }


def render(drivers: list[dict[str, Any]], limit: int = 2000) -> str:
    """Drivers as text for a CRM field: one reason per line, cut to the field's length."""
    lines = [f"{d['score'].capitalize()}: {d['text']}" for d in drivers]
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"
