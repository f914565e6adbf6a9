"""Turn one account's simulated draws into world records (contacts, deals, cases, activities)."""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import TYPE_CHECKING

from sandbox.world_names import ACTIVITY_SUBJECTS, CASE_SUBJECTS, FIRST_NAMES, LAST_NAMES, TITLES
from sandbox.world_records import WActivity, WCase, WContact, WDeal

if TYPE_CHECKING:
    from sandbox.world_account import _Life

# Median hours to resolve a case, by priority, for an account with middling experience.
RESOLUTION_HOURS = {"urgent": 6.0, "high": 20.0, "medium": 48.0, "low": 96.0}
_DEAL_LABEL = {"new": "New business", "renewal": "Renewal", "expansion": "Expansion"}
_KINDS = ("email", "email", "email", "email", "email", "call", "call", "call", "meeting", "meeting")


def contact_keys(account_key: str, count: int) -> list[str]:
    """The keys of an account's contacts, in order of creation."""
    return [f"{account_key}-C{i:03d}" for i in range(1, count + 1)]


def build_activities(
    life: _Life, keys: list[str], engaged: list[int], engaged_t: list[float], last_touch: list[float | None]
) -> tuple[WActivity, ...]:
    """Activities in time order, each with an engaged contact who existed then (or none)."""
    rand, at, key = life.r.random, life.at, life.key
    out = []
    for j, t in enumerate(sorted(life.activity_times()), 1):
        k = bisect_right(engaged_t, t)
        ci = engaged[int(rand() * k)] if k and rand() >= 0.08 else None
        if ci is not None:
            last_touch[ci] = t
        kind = _KINDS[int(rand() * 10)]
        subjects = ACTIVITY_SUBJECTS[kind]
        contact = None if ci is None else keys[ci]
        out.append(WActivity(f"{key}-T{j:04d}", key, contact, kind, subjects[int(rand() * len(subjects))], at(t)))  # type: ignore[arg-type]
    return tuple(out)


def build_contacts(
    life: _Life, keys: list[str], domain: str, times: list[float], last_touch: list[float | None]
) -> tuple[WContact, ...]:
    """Contacts with unique emails at the account's domain and their last logged activity."""
    rand, at, key = life.r.random, life.at, life.key
    used: set[str] = set()
    out = []
    for i, t in enumerate(times):
        first = FIRST_NAMES[int(rand() * len(FIRST_NAMES))]
        last = LAST_NAMES[int(rand() * len(LAST_NAMES))]
        local = f"{first}.{last}".lower()
        if local in used:
            local = f"{local}{i + 1}"
        used.add(local)
        touched = last_touch[i]
        out.append(
            WContact(
                key=keys[i],
                account_key=key,
                first_name=first,
                last_name=last,
                email=f"{local}@{domain}",
                title=TITLES[int(rand() * len(TITLES))],
                created_at=at(t),
                last_activity_at=None if touched is None else at(touched),
            )
        )
    return tuple(out)


def build_deals(life: _Life, keys: list[str], name: str, contact_times: list[float]) -> tuple[WDeal, ...]:
    """Deals in order of creation, each linked to a contact who existed when it was opened."""
    r, at, key = life.r, life.at, life.key
    out = []
    for j, (deal_type, created, close, stage, amount) in enumerate(sorted(life.deals, key=lambda d: d[1])):
        k = bisect_right(contact_times, created)
        ci = int(r.random() * k) if k and r.random() >= 0.1 else None
        closed = stage != "open"
        close_at = at(close)
        out.append(
            WDeal(
                key=f"{key}-D{j + 1:03d}",
                account_key=key,
                contact_key=None if ci is None else keys[ci],
                name=f"{name} - {_DEAL_LABEL[deal_type]} {close_at.year}",
                amount=round(amount, 2),
                deal_type=deal_type,  # type: ignore[arg-type]
                stage=stage,  # type: ignore[arg-type]
                is_closed=closed,
                is_won=stage == "won",
                close_date=close_at.date(),
                created_at=at(created),
                closed_at=close_at if closed else None,
            )
        )
    return tuple(out)


def build_cases(life: _Life, keys: list[str], contact_times: list[float]) -> tuple[WCase, ...]:
    """Cases whose priority mix, resolution time, escalations, reopens and CSAT follow experience."""
    r, at, key = life.r, life.at, life.key
    bad = 1.0 - life.e
    p_urgent, p_high = 0.04 + 0.10 * bad, 0.16 + 0.14 * bad
    out = []
    for j, t in enumerate(life.case_times(len(contact_times))):
        u = r.random()
        if u < p_urgent:
            priority = "urgent"
        elif u < p_urgent + p_high:
            priority = "high"
        elif u < p_urgent + p_high + 0.45:
            priority = "medium"
        else:
            priority = "low"
        hours = RESOLUTION_HOURS[priority] * math.exp(2.0 * bad - 0.7 + r.gauss(0.0, 0.5))
        escalated = r.random() < 0.01 + 0.30 * bad * bad + (0.06 if priority in ("urgent", "high") else 0.0)
        if escalated:
            hours *= 1.6
        if r.random() < 0.02 + 0.12 * bad * bad:  # stuck: waiting on engineering, forgotten in a queue
            hours *= r.uniform(5.0, 20.0)
        reopens = 0
        while reopens < 5 and r.random() < 0.03 + 0.4 * bad * bad:
            reopens += 1
            hours *= 1.3
        close = t + hours / 24.0
        closed = close <= 0.0
        satisfaction = None
        if closed and r.random() < 0.35:
            slow = math.log(hours / RESOLUTION_HOURS[priority])
            score = 3.1 + 2.4 * (life.e - 0.5) + r.gauss(0.0, 0.8) - 0.45 * reopens - 0.6 * escalated - 0.3 * slow
            satisfaction = float(max(1, min(5, round(score))))
        status = "closed" if closed else "escalated" if escalated else "new" if t > -1.0 else "working"
        k = bisect_right(contact_times, t)
        ci = int(r.random() * k) if k and r.random() >= 0.12 else None
        out.append(
            WCase(
                key=f"{key}-K{j + 1:04d}",
                account_key=key,
                contact_key=None if ci is None else keys[ci],
                subject=CASE_SUBJECTS[int(r.random() * len(CASE_SUBJECTS))],
                priority=priority,  # type: ignore[arg-type]
                status=status,  # type: ignore[arg-type]
                is_closed=closed,
                is_escalated=escalated,
                opened_at=at(t),
                closed_at=at(close) if closed else None,
                reopen_count=reopens,
                satisfaction=satisfaction,
            )
        )
    return tuple(out)
