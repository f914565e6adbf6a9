"""Everything one running sandbox org holds: data, metadata, sessions, cursors, jobs, usage,
faults, statistics and the outbound sender, built from the synthetic world.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sandbox.salesforce.bulk2 import Jobs
from sandbox.salesforce.cursors import Cursors
from sandbox.salesforce.faults import Faults, Stats, Usage
from sandbox.salesforce.oauth import Auth
from sandbox.salesforce.outbound import Outbound, Settings
from sandbox.salesforce.query import Compiler
from sandbox.salesforce.seed import seed_users, seed_world
from sandbox.salesforce.store import Org
from sandbox.salesforce.tooling import Tooling

API_USERNAME = "integration@rapport-sandbox.example.com"
# Org customizations present from the start, so the world's satisfaction and reopens are visible.
CASE_FIELDS = {
    "Case.CSAT__c": {"label": "CSAT", "type": "Number", "precision": 3, "scale": 1,
                     "description": "Customer satisfaction survey answer (1-5)"},
    "Case.Reopen_Count__c": {"label": "Reopen Count", "type": "Number", "precision": 3, "scale": 0,
                             "description": "How many times the case was reopened"},
}


@dataclass
class WorldSpec:
    """Which world to load: a size and seed for sandbox.world, or bundles given directly."""

    size: str = "small"
    seed: int = 0
    accounts: int | None = None
    bundles: Callable[[], Iterable[Any]] | None = None
    owners: Callable[[], Iterable[Any]] | None = None

    def load(self) -> tuple[Iterable[Any], Iterable[Any]]:
        """The bundles and the sales reps."""
        if self.bundles is not None:
            return self.bundles(), self.owners() if self.owners else []
        from sandbox import world

        return world.generate(self.size, self.seed, now=world.today(), accounts=self.accounts), world.owners(self.seed)


class Instance:
    """One org and its services; `reset()` reloads the world and keeps sessions and settings."""

    def __init__(self, spec: WorldSpec, *, token_ttl: float = 7200.0, daily_limit: int = 100_000,
                 outbound: Settings | None = None) -> None:
        self.spec = spec
        self.faults = Faults()
        self.stats = Stats()
        self.usage = Usage(daily_limit)
        self.jobs = Jobs()
        self.instance_url = ""
        self._load()
        self.auth = Auth(self.org.org_id, self.org.user_id, API_USERNAME, token_ttl=token_ttl)
        self.outbound = Outbound(self.org, settings=outbound or Settings(), session_factory=self.auth.new_session)

    def _load(self) -> None:
        org = Org()
        bundles, owners = self.spec.load()
        self.users = seed_users(org, owners, API_USERNAME)
        tooling = Tooling(org)
        for full_name, metadata in CASE_FIELDS.items():
            tooling.create_field(full_name, metadata)
        self.keys, latest = seed_world(org, bundles, self.users)
        if latest is not None:
            org.clock.catch_up(latest)
        self.org = org
        self.tooling = tooling
        self.compiler = Compiler(org)
        self.cursors = Cursors(org.ids)

    def set_url(self, url: str) -> None:
        """Tell every part the public base URL (https://127.0.0.1:PORT)."""
        self.instance_url = url
        self.auth.instance_url = url
        self.outbound.instance_url = url

    def reset(self) -> None:
        """Reload the world; clear faults, statistics, usage, jobs, validation rules and the outbound queue."""
        self.outbound.clear()
        old = self.org
        self._load()
        old.listeners.remove(self.outbound.on_change)
        self.outbound.org = self.org
        self.org.listeners.append(self.outbound.on_change)
        self.faults.reset()
        self.stats.reset()
        self.usage.set(used=0)
        self.jobs.jobs.clear()
