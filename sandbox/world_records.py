"""The records of the synthetic CRM world: CRM-agnostic, immutable, keyed by world keys.

The sandboxes turn them into Salesforce or HubSpot records with ids of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

DealType = Literal["new", "renewal", "expansion"]
DealStage = Literal["open", "won", "lost"]
Priority = Literal["low", "medium", "high", "urgent"]
CaseStatus = Literal["new", "working", "escalated", "closed"]
ActivityKind = Literal["call", "email", "meeting"]


@dataclass(frozen=True, slots=True)
class Owner:
    """A sales rep who owns accounts."""

    key: str
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class WAccount:
    """A company; `health` and `experience` are latent (0..1) and never synced to a CRM.

    `experience` is the service the account gets as a customer: it tilts its cases and renewals, so
    it leaves no trace on an account that never became one (see `Bundle.was_customer`)."""

    key: str
    name: str
    domain: str
    industry: str
    employees: int
    annual_revenue: float
    created_at: datetime
    owner_key: str
    health: float
    experience: float


@dataclass(frozen=True, slots=True)
class WContact:
    """A person at an account."""

    key: str
    account_key: str
    first_name: str
    last_name: str
    email: str
    title: str
    created_at: datetime
    last_activity_at: datetime | None


@dataclass(frozen=True, slots=True)
class WDeal:
    """An opportunity: new business, an annual renewal or an expansion."""

    key: str
    account_key: str
    contact_key: str | None
    name: str
    amount: float
    deal_type: DealType
    stage: DealStage
    is_closed: bool
    is_won: bool
    close_date: date
    created_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class WCase:
    """A support case; `satisfaction` (1..5) only when the customer answered the survey."""

    key: str
    account_key: str
    contact_key: str | None
    subject: str
    priority: Priority
    status: CaseStatus
    is_closed: bool
    is_escalated: bool
    opened_at: datetime
    closed_at: datetime | None
    reopen_count: int
    satisfaction: float | None


@dataclass(frozen=True, slots=True)
class WActivity:
    """A logged call, email or meeting."""

    key: str
    account_key: str
    contact_key: str | None
    kind: ActivityKind
    subject: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Bundle:
    """One account with everything attached to it."""

    account: WAccount
    contacts: tuple[WContact, ...]
    deals: tuple[WDeal, ...]
    cases: tuple[WCase, ...]
    activities: tuple[WActivity, ...]

    def was_customer(self) -> bool:
        """Whether the account ever won a deal, i.e. ever had the experience `account.experience` describes."""
        return any(d.is_won for d in self.deals)

    def record_count(self) -> int:
        """How many CRM records the bundle holds (the account included)."""
        return 1 + len(self.contacts) + len(self.deals) + len(self.cases) + len(self.activities)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one account in the horizon after the as-of date (ground truth)."""

    account_key: str
    churned: bool
    renewed: bool
    expanded: bool
