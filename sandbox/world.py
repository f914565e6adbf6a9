"""The synthetic CRM world: a deterministic, streamed population of accounts and their history.

Each account is simulated on its own from `seed * 1_000_003 + index`, so any account can be
generated independently and the whole world streams in constant memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sandbox.world_account import simulate_account
from sandbox.world_names import owners
from sandbox.world_records import (
    Bundle,
    Outcome,
    Owner,
    WAccount,
    WActivity,
    WCase,
    WContact,
    WDeal,
)
from sandbox.world_rows import unified_rows

__all__ = [
    "DEFAULT_NOW",
    "SIZES",
    "Bundle",
    "Outcome",
    "Owner",
    "WAccount",
    "WActivity",
    "WCase",
    "WContact",
    "WDeal",
    "account_count",
    "generate",
    "outcome_of",
    "outcomes",
    "owners",
    "today",
    "unified_rows",
]

SIZES: dict[str, int] = {"small": 100, "medium": 10_000, "large": 100_000}
DEFAULT_NOW = datetime(2025, 7, 1, tzinfo=UTC)
DEFAULT_HORIZON_DAYS = 180


def today() -> datetime:
    """Midnight UTC today: the "now" of a sandbox, which emulates a live CRM (same world all day)."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def account_count(size: str = "small", accounts: int | None = None) -> int:
    """The number of accounts for a size name (or the explicit override)."""
    if accounts is not None:
        if accounts < 0:
            raise ValueError(f"accounts must be 0 or more, got {accounts}")
        return accounts
    if size not in SIZES:
        raise ValueError(f"unknown world size {size!r}: use one of {', '.join(SIZES)}")
    return SIZES[size]


def generate(
    size: str = "small", seed: int = 0, *, now: datetime = DEFAULT_NOW, accounts: int | None = None
) -> Iterator[Bundle]:
    """Stream the world one account bundle at a time; the same (size, seed, now) gives the same world."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    count = account_count(size, accounts)
    reps = [o.key for o in owners(seed)]
    for index in range(count):
        yield simulate_account(index, seed, now, reps)


def outcome_of(bundle: Bundle, *, now: datetime = DEFAULT_NOW, horizon_days: int = DEFAULT_HORIZON_DAYS) -> Outcome:
    """What the bundle's records say happened in (now - horizon, now]."""
    as_of = now - timedelta(days=horizon_days)
    won_in_horizon = renewed = expanded = lost_renewal = open_at_end = False
    for deal in bundle.deals:
        if deal.stage == "open":
            open_at_end = True
            continue
        closed = deal.closed_at
        if closed is None or not (as_of < closed <= now):
            continue
        if deal.is_won:
            won_in_horizon = True
            renewed = renewed or deal.deal_type == "renewal"
            expanded = expanded or deal.deal_type == "expansion"
        elif deal.deal_type == "renewal":
            lost_renewal = True
    churned = lost_renewal or (not won_in_horizon and not open_at_end)
    return Outcome(account_key=bundle.account.key, churned=churned, renewed=renewed, expanded=expanded)


def outcomes(
    size: str = "small",
    seed: int = 0,
    *,
    now: datetime = DEFAULT_NOW,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    accounts: int | None = None,
) -> Iterator[Outcome]:
    """Ground truth for the horizon after as_of = now - horizon_days, one outcome per account.

    Accounts created after as_of are included (a backtest skips them: they were not visible yet).
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    for bundle in generate(size, seed, now=now, accounts=accounts):
        yield outcome_of(bundle, now=now, horizon_days=horizon_days)
