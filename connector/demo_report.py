"""The demo's figures and its printed summary: which accounts the live changes go to, what each
connection cost (runs, API calls, fields written), and the summary table.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.model import Account, Case, Deal, Score, ScoreHistory, SyncRun, WebhookEvent


def pick_targets(engine: Engine, connection_id: int) -> dict[str, tuple[str, str]]:
    """{"deal": (account, open deal), "case": (other account, open case)} for the live changes.

    The deal goes to the weakest relationship that has an open deal; the escalation to the newest
    open, unescalated case of another account (the case that just came in), so both show.
    """
    s, d, c = Score.__table__, Deal.__table__, Case.__table__  # type: ignore[attr-defined]
    joined = sa.and_(s.c.connection_id == connection_id, s.c.object == "account")
    with engine.connect() as conn:
        deal = conn.execute(
            sa.select(d.c.account_external_id, d.c.external_id)
            .join(s, sa.and_(joined, s.c.external_id == d.c.account_external_id))
            .where(d.c.connection_id == connection_id, d.c.is_closed.is_(False), d.c.is_deleted.is_(False))
            .order_by(s.c.relationship, d.c.account_external_id, d.c.external_id).limit(1)).first()
        if deal is None:
            raise LookupError("no account with an open deal to win")
        case = conn.execute(
            sa.select(c.c.account_external_id, c.c.external_id)
            .join(s, sa.and_(joined, s.c.external_id == c.c.account_external_id))
            .where(c.c.connection_id == connection_id, c.c.is_closed.is_(False), c.c.is_escalated.is_(False),
                   c.c.is_deleted.is_(False), c.c.account_external_id != deal[0])
            .order_by(c.c.opened_at.desc(), s.c.experience.desc(), c.c.external_id).limit(1)).first()
        if case is None:
            raise LookupError("no other account with an open, unescalated case to escalate")
    return {"deal": (deal[0], deal[1]), "case": (case[0], case[1])}


def account_name(engine: Engine, connection_id: int, external_id: str) -> str:
    """The account's name in the unified model (its id when it has none)."""
    a = Account.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        name = conn.execute(sa.select(a.c.name).where(a.c.connection_id == connection_id,
                                                       a.c.external_id == external_id)).scalar()
    return str(name or external_id)


def figures(engine: Engine, connection_id: int, targets: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What the connection's runs did: accounts and contacts scored (first full scoring), records and
    fields written, API calls, and what became of the webhook events."""
    r, e = SyncRun.__table__, WebhookEvent.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        runs = conn.execute(sa.select(r.c.kind, r.c.trigger, r.c.counts, r.c.api_calls)
                            .where(r.c.connection_id == connection_id).order_by(r.c.id)).all()
        events: dict[str, int] = dict(conn.execute(sa.select(e.c.status, sa.func.count()).where(e.c.connection_id == connection_id)
                                   .group_by(e.c.status)).all())
    scored: dict[str, Any] = next((dict(run.counts or {}) for run in runs if run.kind == "score"), {})
    written = fields = 0
    for run in runs:
        if run.kind != "writeback":
            continue
        for object, counts in (run.counts or {}).items():
            if isinstance(counts, dict):
                written += int(counts.get("written", 0))
                fields += int(counts.get("written", 0)) * len(targets.get(object, {}))
    return {
        "accounts_scored": int(scored.get("accounts", 0)),
        "contacts_scored": int(scored.get("contacts", 0)),
        "records_written": written,
        "fields_written": fields,
        "api_calls": sum(int(run.api_calls or 0) for run in runs),
        "webhook_rescores": sum(1 for run in runs if run.kind == "score" and run.trigger == "webhook"),
        "webhook_events": {str(k): int(v) for k, v in events.items()},
    }


def why_stale(engine: Engine, connection_id: int, name: str, account: str, since: Any) -> str:
    """What Rapport did with a change that left no new score in the CRM."""
    e, h = WebhookEvent.__table__, ScoreHistory.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        events = conn.execute(sa.select(e.c.status, sa.func.count()).where(
            e.c.connection_id == connection_id, e.c.received_at >= since).group_by(e.c.status)).all()
        rescored = conn.execute(sa.select(sa.func.count()).select_from(h).where(
            h.c.connection_id == connection_id, h.c.object == "account", h.c.external_id == account,
            h.c.scored_at >= since)).scalar_one()
    if not events:
        return "no webhook arrived; check the CRM's webhook settings and the web app"
    if rescored:
        return ("the account was rescored but no score moved by a point and its tier and drivers stayed, "
                "so nothing was written back")
    return f"webhook events {dict(events)} did not lead to a rescore; see `rapport runs {name}`"


def _short(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "-" if value in (None, "") else str(value)


def _drivers(value: Any) -> str:
    lines = [line.strip() for line in str(value or "").splitlines() if line.strip()]
    return "; ".join(lines) if lines else "-"


def render(summary: dict[str, Any]) -> str:
    """The summary as the demo prints it."""
    lines = [f"Rapport demo finished in {summary['seconds']:.1f}s", ""]
    header = ("CRM", "ACCOUNTS SCORED", "CONTACTS SCORED", "RECORDS WRITTEN", "FIELDS WRITTEN", "API CALLS*",
              "ACCOUNTS WITH A SCORE**")
    rows = [header] + [
        (kind, str(c["accounts_scored"]), str(c["contacts_scored"]), str(c["records_written"]),
         str(c["fields_written"]), str(c["api_calls"]), f"{c['accounts_with_score']}/{c['accounts_in_crm']}")
        for kind, c in summary["crms"].items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip() for row in rows]
    lines += ["*  counted by the CRM against its daily API allocation (the demo's own reads and changes excluded)",
              "** live accounts whose relationship score field is set, read through the CRM's API client"]
    lines += ["", "Live changes in the CRMs (webhook -> fetch -> rescore -> write-back, read back through the CRM API):"]
    for ch in summary["changes"]:
        b, a = ch["before"], ch["after"]
        lines.append(f"  {ch['crm']:<10} {ch['change']} on {ch['account_name']} ({ch['account']}): "
                     f"relationship {_short(b['relationship_score'])} -> {_short(a['relationship_score'])}, "
                     f"experience {_short(b['experience_score'])} -> {_short(a['experience_score'])}, "
                     f"tier {_short(b['tier'])} -> {_short(a['tier'])}; fresh after {ch['freshness_s']:.2f}s")
        lines.append(f"  {'':<10} drivers before: {_drivers(b['drivers'])}")
        lines.append(f"  {'':<10} drivers after:  {_drivers(a['drivers'])}")
    fresh = [ch["freshness_s"] for ch in summary["changes"]]
    if fresh:
        lines.append(f"  freshness: max {max(fresh):.2f}s, mean {sum(fresh) / len(fresh):.2f}s over {len(fresh)} changes")
    for kind, c in summary["crms"].items():
        ev = c["webhook_events"]
        lines.append(f"  {kind}: {sum(ev.values())} webhook events ({', '.join(f'{v} {k}' for k, v in sorted(ev.items()))}),"
                     f" {c['webhook_rescores']} rescore(s)")
    missing = {kind: c["accounts_missing_score"] for kind, c in summary["crms"].items() if c["accounts_missing_score"]}
    lines.append("")
    lines.append("check: every live account in both CRMs has a relationship score" if not missing else
                 f"check FAILED: accounts without a relationship score: {missing}")
    return "\n".join(lines)
