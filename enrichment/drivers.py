"""Drivers: the top reasons behind a score, in plain words, with their point contributions.

The points are the exact additive contributions of `enrichment.combine`; the words describe the
raw facts behind each component (what a rep can check in the CRM).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from enrichment.combine import Breakdown
from enrichment.experience import customer_days, exposure
from enrichment.features import AccountFeatures

TOP = 3
MIN_POINTS = 0.5  # a reason worth less than half a point is not worth a rep's attention
MINUS = "\u2212"


def whole(x: float) -> int:
    """A count for display: rounded, 0 when unknown or negative."""
    return int(round(x)) if math.isfinite(x) and x > 0 else 0


def signed(points: float) -> str:
    """'+18' or '−12' (a true minus sign, as shown on the record)."""
    size = int(round(abs(points)))
    return f"+{size}" if points >= 0 else f"{MINUS}{size}"


def money(amount: float) -> str:
    """$950, $24k, $1.2M."""
    a = abs(float(amount)) if math.isfinite(amount) else 0.0
    if a >= 1e6:
        return f"${a / 1e6:.1f}M".replace(".0M", "M")
    if a >= 1e3:
        return f"${a / 1e3:.0f}k"
    return f"${a:.0f}"


@lru_cache(maxsize=4096)
def ago(days: float) -> str:
    """'today', '3 days', '5 months', '2.1 years'."""
    d = whole(days)
    if d == 0:
        return "today"
    if d < 60:
        return f"{d} day{'s' if d != 1 else ''} ago"
    if d < 730:
        return f"{round(d / 30.44)} months ago"
    return f"{d / 365.25:.1f} years ago"


@lru_cache(maxsize=64)
def span(days: int) -> str:
    """A window in words: 'the last 3 years', 'the last 12 months', 'the last 7 days'."""
    years = days / 365.25
    if years >= 1.9 and abs(years - round(years)) < 0.1:
        return f"the last {round(years)} years"
    return f"the last {round(days / 30.44)} months" if days >= 60 else f"the last {days} days"


def plural(n: float, word: str, none: str | None = None) -> str:
    """'no case', '1 case', '3 cases'."""
    k = whole(n)
    if k == 0:
        return none or f"no {word}"
    return f"{k} {word}{'' if k == 1 else 's'}"


def duration(days: float) -> str:
    """A length of time: 'under a month', '1 month', '5 months', '2.1 years'."""
    if days >= 365:
        return f"{days / 365.25:.1f} years"
    months = round(days / 30.44) if math.isfinite(days) else 0
    return "under a month" if months < 1 else f"{months} month{'s' if months != 1 else ''}"


def rate(x: float) -> str:
    """A small rate with two significant digits: '0.04', '0.35', '1.2'."""
    return f"{x:.1f}" if x >= 1 else f"{x:.2g}"


def account_texts(acc: AccountFeatures, exp_signals: dict[str, np.ndarray], parts: dict[str, np.ndarray],
                  params: dict[str, Any]) -> dict[str, Callable[[int], str]]:
    """One function per component: account index -> the facts behind that component."""
    w = params["windows"]
    # plain Python lists: formatting a few reasons per record from numpy scalars costs several times more
    lists = {k: v.tolist() for k, v in acc.cols.items()}
    sig = {k: exp_signals[k].tolist() for k in ("load", "speed")}
    exposed = exposure(acc, params, w["case_days"]).tolist()
    as_customer = customer_days(acc, params, w["case_days"]).tolist()
    part_l = {k: v.tolist() for k, v in parts.items()}

    def c(name: str) -> list[float]:
        return lists[name]

    def value(i: int) -> str:
        won = c("won_amount")[i]
        return f"won {money(won)} in {span(w['value_days'])}" if won > 0 else f"nothing won in {span(w['value_days'])}"

    def frequency(i: int) -> str:
        talks = plural(c("activities")[i], "activity", "no activity").replace("activitys", "activities")
        return f"{plural(c('won_deals')[i], 'deal')} won in {span(w['frequency_days'])}, {talks} in {span(w['activity_days'])}"

    def recency(i: int) -> str:
        known = [d for d in (c("days_since_won")[i], c("days_since_activity")[i]) if math.isfinite(d)]
        if known:
            return f"last won deal or activity {ago(min(known))}"
        age = c("age_days")[i]
        return f"no won deal or activity since the account was created {ago(age)}" if math.isfinite(age) else "no won deal or activity"

    def tenure(i: int) -> str:
        d = c("days_since_first_won")[i]
        if not math.isfinite(d):
            return "not a customer yet (no deal won)"
        # a deal won today (or dated ahead) makes a customer all the same
        length = duration(d)
        return "new customer (under a month)" if length == "under a month" else f"customer for {length}"

    def breadth(i: int) -> str:
        return f"{plural(c('engaged_contacts')[i], 'contact')} engaged in {span(w['breadth_days'])}"

    def momentum(i: int) -> str:
        moves = {p: abs(part_l[p][i] - 0.5) if math.isfinite(part_l[p][i]) else -1.0 for p in part_l}
        part = max(moves, key=lambda p: moves[p])
        if part == "pipeline":
            pipe = c("open_pipeline")[i]
            return f"{money(pipe)} in open deals" if pipe > 0 else "no open deal"
        if part == "renewals":
            return (f"{plural(c('renewals_won')[i], 'renewal')} won, {whole(c('renewals_lost')[i])} lost "
                    f"in {span(w['renewal_days'])}")
        return f"{plural(c('recent_losses')[i], 'deal')} lost in {span(w['loss_days'])}"

    def load(i: int) -> str:
        n, days, people = c("cases")[i], as_customer[i], plural(max(whole(c("contacts")[i]), 1), "contact")
        # the facts a rep can check: cases, contacts and how long the account has been a customer
        period = span(w["case_days"]) if days >= w["case_days"] - 1 else f"{duration(days)} as a customer"
        if not n > 0:
            return f"no support case from {people} in {period}" if days > 0 else f"no support case in {span(w['case_days'])}"
        if not exposed[i] > 0:
            return f"{plural(n, 'case')} in {span(w['case_days'])}"
        return f"{rate(n / exposed[i])} cases per contact per quarter ({plural(n, 'case')} from {people} in {period})"

    def speed(i: int) -> str:
        ratio = math.exp(-sig["speed"][i])
        if ratio >= 1:
            return f"cases resolved {ratio:.1f}× slower than usual for their priority"
        return f"cases resolved {1 / ratio:.1f}× faster than usual for their priority"

    def backlog(i: int) -> str:
        n, stale, age = c("open_high")[i], c("open_high_stale")[i], w["backlog_age_days"]
        if not n > 0:
            return "no high-priority case open"
        if stale >= n:
            return f"{plural(n, 'high-priority case')} open for over {age} days"
        return f"{plural(n, 'high-priority case')} open, {whole(stale)} for over {age} days"

    def escalations(i: int) -> str:
        return (f"{whole(c('escalated')[i])} of {plural(c('quality_cases')[i], 'case')} escalated "
                f"(opened in {span(w['quality_days'])}, or still open)")

    def reopens(i: int) -> str:
        return f"{plural(c('reopens')[i], 'reopen')} on {plural(c('closed_cases')[i], 'closed case')} in {span(w['quality_days'])}"

    def satisfaction(i: int) -> str:
        n = c("csat_n")[i]
        return f"average satisfaction {c('csat_sum')[i] / n:.1f} over {plural(n, 'rating')}"

    return {f.__name__: f for f in (value, frequency, recency, tenure, breadth, momentum,
                                    load, speed, backlog, escalations, reopens, satisfaction)}


def top(points: np.ndarray, k: int) -> np.ndarray:
    """Per row, the columns of the k largest |points|, largest first, ties (and NaN, last) in column order:
    the first k of a stable argsort, found by k passes of argmax rather than sorting every row."""
    k = min(k, points.shape[1])
    size = np.abs(points)
    size[np.isnan(size)] = -1.0  # below every real size
    order = np.empty((points.shape[0], k), dtype=np.int64)
    rows = np.arange(points.shape[0])
    for j in range(k):
        order[:, j] = pick = np.argmax(size, axis=1)
        size[rows, pick] = -2.0  # taken: below the rest
    return order


def slots(b: Breakdown, texts: dict[str, Callable[[int], str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each record's top reasons of one score: (points N×TOP, component index N×TOP, bare text N×TOP).

    Reasons under MIN_POINTS get 0 points and no text."""
    n = len(b.score)
    k = min(TOP, len(b.names))
    order = top(b.points, k)
    pts = np.take_along_axis(b.points, order, axis=1)
    keep = np.abs(pts) >= MIN_POINTS
    words = np.full((n, k), "", dtype=object)
    rows, cols = np.nonzero(keep)
    comp_of = order[rows, cols].tolist()
    for i, j, k in zip(rows.tolist(), cols.tolist(), comp_of, strict=True):
        words[i, j] = texts[b.names[k]](i)
    return np.where(keep, pts, 0.0), order, words


def fragment(score: str, component: str, points: float, text: str) -> str:
    """One driver as JSON: {score, component, points, text} with the signed points leading the text.

    Characters outside ASCII (the minus sign, "×") are written as JSON escapes: a record's drivers
    are then pure ASCII, which Python keeps at one byte per character instead of two and the
    database driver takes without re-encoding; a million records' drivers are half the memory."""
    out = orjson.dumps({"score": score, "component": component, "points": round(points, 1),
                        "text": f"{signed(points)} {text}"}).decode()
    return out if out.isascii() else _NON_ASCII.sub(_escape, out)


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape(match: re.Match[str]) -> str:
    return json.dumps(match.group())[1:-1]  # "\uXXXX" (a surrogate pair beyond the BMP)


def assemble(points: np.ndarray, names: list[tuple[str, str]], component: np.ndarray, text_id: np.ndarray,
             render: Callable[[str, int], str]) -> list[str]:
    """Per record, the JSON list of its top reasons across candidate columns (largest |points| first).

    `component` holds an index into `names` ((score, component) pairs) per cell and `text_id` an
    integer that `render(component, text_id)` turns into words. Records sharing a reason (same
    component, words and rounded points) share one rendering, so the work grows with the number of
    distinct reasons, not of records."""
    n = points.shape[0]
    if n == 0:
        return []
    order = top(points, TOP)
    pts = np.take_along_axis(points, order, axis=1)
    keep = np.abs(pts) >= MIN_POINTS
    comp = np.take_along_axis(component, order, axis=1).astype(np.int64)
    tid = np.clip(np.take_along_axis(text_id, order, axis=1).astype(np.int64), 0, 2**36 - 1)
    tenths = np.clip(np.rint(pts * 10.0).astype(np.int64), -2000, 2000) + 2048
    key = ((comp * 4096 + tenths) << 36) | tid
    unique, inverse = np.unique(key[keep], return_inverse=True)
    frags = np.empty(len(unique) + 1, dtype=object)
    frags[-1] = ""
    heads = ((unique >> 36) // 4096).tolist()
    tenths_l = (((unique >> 36) % 4096) - 2048).tolist()
    texts = (unique & (2**36 - 1)).tolist()
    for u in range(len(heads)):
        score, name = names[heads[u]]
        frags[u] = fragment(score, name, tenths_l[u] / 10.0, render(name, texts[u]))
    # the kept reasons of a row come first (largest first); after the first, each follows a comma
    later = np.array([("," + f if f else "") for f in frags.tolist()], dtype=object)
    cell = np.full((n, TOP), len(unique), dtype=np.int64)
    cell[:, : keep.shape[1]][keep] = inverse
    columns = [frags[cell[:, 0]].tolist(), *(later[cell[:, j]].tolist() for j in range(1, TOP))]
    return ["[" + "".join(parts) + "]" for parts in zip(*columns, strict=True)]


@lru_cache(maxsize=8192)
def _contact_text(component: str, value: float, window: int) -> str:
    if component == "engagement_recency":
        return f"last activity {ago(value)}" if value >= 0 else "no logged activity"
    if component == "engagement_volume":
        return f"{plural(value, 'activity', 'no activity').replace('activitys', 'activities')} in {span(window)}"
    if component == "own_load":
        return f"raised {plural(value, 'case')} in {span(window)}"
    return f"{plural(value, 'high-priority case')} of theirs open" if value > 0 else "no high-priority case of theirs open"


def contact_render(params: dict[str, Any], account_words: np.ndarray) -> Callable[[str, int], str]:
    """Words for a contact's reason: the account's reason by its cell in `account_words`, or the contact's own
    fact from its value (stored +1, so that -1, "never", fits the ids)."""
    windows = {"engagement_volume": params["windows"]["breadth_days"], "own_load": params["windows"]["case_days"]}
    flat = account_words.ravel()

    def render(component: str, text_id: int) -> str:
        if component.startswith("account."):
            return "account: " + str(flat[text_id])
        return _contact_text(component, float(text_id - 1), windows.get(component, 0))

    return render


def render(drivers: list[dict[str, Any]], limit: int = 2000) -> str:
    """Drivers as text for a CRM field: one reason per line, cut to the field's length."""
    lines = [f"{d['score'].capitalize()}: {d['text']}" for d in drivers]
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"
