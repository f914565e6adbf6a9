"""Every admin page and API route of the app, with its URL filled in for one tenant."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from tests.web.support import Tenant

BLUEPRINTS = ("signin", "connections", "mappings", "ops", "scores", "tokens", "api")
PUBLIC = {"signin.login", "api.openapi"}
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
SCOPED = {"connection_id", "schedule_id", "run_id"}  # path parts that name something of one workspace


@dataclass(frozen=True)
class Route:
    """One method of one rule, and its URL for a tenant."""

    endpoint: str
    method: str
    rule: str
    args: frozenset[str]

    @property
    def api(self) -> bool:
        return self.endpoint.startswith("api.")

    def url(self, t: Tenant, version: int = 1) -> str:
        """The URL with the tenant's ids in the path (and in the query where a route reads one)."""
        values = {"connection_id": t.connection_id, "schedule_id": t.schedule_id, "run_id": t.run_id,
                  "object": "account", "external_id": t.account, "version": version, "kind": "hubspot", "action": "run",
                  "token_id": 1, "method": "token"}
        path = self.rule
        for name in self.args:
            path = path.replace(f"<{name}>", str(values[name])).replace(f"<path:{name}>", str(values[name]))
        if self.endpoint in ("scores.scores", "scores.compare", "api.compare", "ops.runs", "api.runs"):
            path += f"?connection_id={t.connection_id}"
        if self.endpoint in ("api.cron", "ops.describe"):
            path += "?expr=*/5+*+*+*+*&cron=*/5+*+*+*+*"
        return path


def admin_routes(app: Flask) -> list[Route]:
    """The routes of the admin blueprints, one per method."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in BLUEPRINTS:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append(Route(rule.endpoint, method, rule.rule, frozenset(rule.arguments)))
    return out
