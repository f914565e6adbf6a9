"""How one account lives: latent health and experience drive its deals, contacts, cases and activity.

Every observable is a noisy draw from a mechanism (win rates, Poisson arrivals, lognormal amounts).
"""

# Time runs in days relative to the world's `now` (negative = past). The latent values only tilt
# the mechanisms, so what a CRM shows is correlated with them, never a function of them.

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

from sandbox.world_build import build_activities, build_cases, build_contacts, build_deals, contact_keys
from sandbox.world_names import INDUSTRIES, company_name
from sandbox.world_records import Bundle, WAccount

HISTORY_DAYS = 5 * 365.0
SEED_STRIDE = 1_000_003


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class _Life:
    """The simulation of one account; holds the draws until they become records."""

    def __init__(self, index: int, seed: int, now: datetime) -> None:
        self.r = r = random.Random(seed * SEED_STRIDE + index)
        self.now_ts = now.timestamp()
        self.key = f"A{index + 1:07d}"
        zh = r.gauss(0.0, 1.0)
        # Experience is mildly tied to health: good relationships tend to get better service.
        self.h = _phi(zh)
        self.e = _phi(0.3 * zh + 0.954 * r.gauss(0.0, 1.0))
        self.employees = max(2, min(250_000, int(math.exp(r.gauss(4.3, 1.6)))))
        # Contract value grows sub-linearly with company size, and with the share of wallet a good
        # relationship wins; a few whales are far outside the norm.
        acv = 4000.0 * self.employees**0.45 * math.exp(2.0 * (self.h - 0.5)) * r.lognormvariate(0.0, 0.45)
        if r.random() < 0.006:
            acv *= r.uniform(8.0, 40.0)
        self.acv = acv
        # Long relationships tend to be the healthy ones: trust is built over years.
        age = 75.0 + (HISTORY_DAYS - 75.0) * r.random() ** (1.4 - 0.8 * self.h)
        self.t0 = -r.uniform(1.0, 75.0) if r.random() < 0.04 else -age
        self.deals: list[tuple[str, float, float, str, float]] = []  # type, created, close, stage, amount
        self.won_at: float | None = None
        self.churn_at: float | None = None
        self.end = 0.0

    def at(self, t: float) -> datetime:
        return datetime.fromtimestamp(int(self.now_ts + t * 86400.0), tz=UTC)

    # --- deals -------------------------------------------------------------------------------

    def new_business(self) -> float:
        """Up to three sales attempts; returns the last amount quoted."""
        r, h = self.r, self.h
        t = self.t0 + r.uniform(0.0, min(20.0, -self.t0))
        amount = self.acv
        last_lost: float | None = None
        for _ in range(3):
            close = t + r.lognormvariate(math.log(50.0 * (1.5 - 0.8 * h)), 0.45)
            amount = self.acv * r.lognormvariate(0.0, 0.12)
            if close > 0:
                self.deals.append(("new", t, close, "open", amount))
                return amount
            if r.random() < _sigmoid(-2.0 + 7.0 * h):
                self.deals.append(("new", t, close, "won", amount))
                self.won_at = close
                return amount
            self.deals.append(("new", t, close, "lost", amount))
            last_lost = close
            if r.random() > 0.4 + 0.4 * h:
                break
            t = close + r.uniform(90.0, 450.0)
            if t >= 0:
                break
        if last_lost is not None:
            self.end = min(0.0, last_lost + r.uniform(10.0, 60.0))
        return amount

    def contract_years(self, arr: float) -> None:
        """Annual renewals (won or lost) with expansions in between, up to now."""
        r, h, e = self.r, self.h, self.e
        start = self.won_at
        assert start is not None
        while True:
            anniversary = start + 365.0
            # Renewals open 6.5-7.5 months ahead and close within days of the anniversary, so an
            # active customer always has its next renewal decided or open within 180 days.
            opened = anniversary - r.uniform(195.0, 225.0)
            close = anniversary + max(-10.0, min(20.0, r.gauss(-2.0, 6.0)))
            if opened > 0 or close > 0:
                arr = self.expansions(start + 30.0, 0.0, arr, None)
                if opened <= 0:
                    self.deals.append(("renewal", opened, close, "open", arr * self.uplift()))
                return
            won = r.random() < _sigmoid(-1.5 + 6.0 * h + 2.5 * e + r.gauss(0.0, 0.6))
            arr = self.expansions(start + 30.0, anniversary if won else close, arr, None if won else close)
            amount = arr * self.uplift()
            self.deals.append(("renewal", opened, close, "won" if won else "lost", amount))
            if not won:
                self.churn_at = close
                self.end = min(0.0, close + r.uniform(0.0, 45.0))
                return
            arr, start = amount, anniversary

    def uplift(self) -> float:
        # Healthy customers accept price increases; weak ones negotiate discounts.
        return 1.0 + self.r.gauss(0.02 + 0.08 * (self.h - 0.5), 0.03)

    def expansions(self, a: float, b: float, arr: float, churn_at: float | None) -> float:
        """Upsell opportunities arriving as a Poisson process whose rate rises steeply with health."""
        r, h = self.r, self.h
        rate = (0.04 + 1.3 * h * h) / 365.0 * (0.5 if churn_at is not None else 1.0)
        t = a + r.expovariate(rate)
        while t < b:
            close = t + r.lognormvariate(math.log(40.0), 0.5)
            amount = arr * r.lognormvariate(math.log(0.2), 0.6)
            if churn_at is not None and close >= churn_at:
                self.deals.append(("expansion", t, churn_at, "lost", amount))
            elif close > 0:
                self.deals.append(("expansion", t, close, "open", amount))
            elif r.random() < (0.35 + 0.55 * h) * (0.5 if churn_at is not None else 1.0):
                self.deals.append(("expansion", t, close, "won", amount))
                arr += amount
            else:
                self.deals.append(("expansion", t, close, "lost", amount))
            t += r.expovariate(rate)
        return arr

    # --- people and activity ----------------------------------------------------------------

    def contact_times(self) -> list[float]:
        """Creation times of the contacts, ascending: the first arrives with the account."""
        r = self.r
        mu = math.log(1.5 + 1.2 * math.log(self.employees)) + 0.3 + 0.6 * (self.h - 0.5)
        if self.won_at is None:
            mu -= 0.7
        n = min(400, 1 + int(r.lognormvariate(mu, 0.55)))
        span = self.end - self.t0
        first = min(0.0, self.t0 + r.uniform(0.0, 1.0))
        return sorted([first, *(self.t0 + span * r.random() ** 1.3 for _ in range(n - 1))])

    def activity_times(self) -> list[float]:
        """Background touches (rate rising with health), deal-cycle touches, and a fade before churn."""
        r, h = self.r, self.h
        size = 0.85 + 0.05 * math.log(self.employees)
        rate = (0.6 + 22.0 * h**1.5) * size / 365.0
        times: list[float] = []
        customer_from = self.won_at if self.won_at is not None else self.end
        t = self.t0 + r.expovariate(rate)
        while t < self.end:
            keep = 1.0 if t >= customer_from else 0.35
            if self.churn_at is not None and t > self.churn_at - 270.0:
                keep *= max(0.15, 1.0 - 0.8 * (t - self.churn_at + 270.0) / 270.0)
            if r.random() < keep:
                times.append(t)
            t += r.expovariate(rate)
        for _type, created, close, _stage, _amount in self.deals:
            stop = min(close, 0.0)
            for _ in range(1 + int(r.random() * 3)):
                times.append(created + (stop - created) * r.random())
        return times

    def case_times(self, contacts: int) -> list[float]:
        """Case arrivals during the customer years: more contacts and worse experience, more cases."""
        r = self.r
        if self.won_at is None or r.random() < 0.06:
            return []
        bad = 1.0 - self.e
        rate = 0.6 * contacts**0.8 * (0.35 + 2.4 * bad * bad) / 365.0
        stop = self.churn_at if self.churn_at is not None else 0.0
        times = []
        t = self.won_at + r.expovariate(rate)
        while t < stop:
            times.append(t)
            t += r.expovariate(rate)
        return times


def simulate_account(index: int, seed: int, now: datetime, reps: list[str]) -> Bundle:
    """Simulate account number `index` of the world `seed` and return its bundle of records."""
    life = _Life(index, seed, now)
    r = life.r
    arr = life.new_business()
    if life.won_at is not None:
        life.contract_years(arr)
    name, slug = company_name(r)
    key = life.key
    domain = f"{slug}{index + 1}.example.com"
    account = WAccount(
        key=key,
        name=name,
        domain=domain,
        industry=r.choice(INDUSTRIES),
        employees=life.employees,
        annual_revenue=round(life.employees * r.lognormvariate(math.log(180_000.0), 0.5), -3),
        created_at=life.at(life.t0),
        owner_key=r.choice(reps),
        health=life.h,
        experience=life.e,
    )
    contacts_t = life.contact_times()
    engaged = [i for i in range(len(contacts_t)) if i == 0 or r.random() < 0.1 + 0.8 * life.h]
    engaged_t = [contacts_t[i] for i in engaged]
    last_touch: list[float | None] = [None] * len(contacts_t)
    keys = contact_keys(key, len(contacts_t))
    activities = build_activities(life, keys, engaged, engaged_t, last_touch)
    contacts = build_contacts(life, keys, domain, contacts_t, last_touch)
    deals = build_deals(life, keys, name, contacts_t)
    cases = build_cases(life, keys, contacts_t)
    return Bundle(account=account, contacts=contacts, deals=deals, cases=cases, activities=activities)

