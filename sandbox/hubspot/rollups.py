"""The rollups HubSpot keeps on companies and contacts from the records associated with them.

A company counts its live contacts and deals, its open deals, its closed-won revenue and most recent
closed-won deal; companies and contacts carry the date of their latest logged activity. The store
recomputes a record's rollups when an associated record changes (see `Portal._refresh_rollups`); the
seeder computes them in bulk with the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation

from sandbox.hubspot.associations import Associations
from sandbox.hubspot.records import Record, Table
from sandbox.hubspot.schema import DEAL_STAGES, ENGAGEMENTS
from sandbox.hubspot.values import iso, parse_ms

# a stage's pipeline metadata: isClosed, and won when it closes with probability 1
CLOSED_DEAL_STAGES = frozenset(s[0] for s in DEAL_STAGES if s[3])
WON_DEAL_STAGES = frozenset(s[0] for s in DEAL_STAGES if s[3] and float(s[2]) == 1.0)
SALES_ACTIVITIES = ("calls", "emails", "meetings")  # what `hs_last_sales_activity_timestamp` follows

DEAL_ROLLUPS = ("num_associated_deals", "hs_num_open_deals", "total_revenue", "recent_deal_amount",
                "recent_deal_close_date")
ACTIVITY_ROLLUPS = ("notes_last_updated", "hs_last_sales_activity_timestamp")
ROLLUPS: dict[str, tuple[str, ...]] = {
    "companies": ("num_associated_contacts", *DEAL_ROLLUPS, *ACTIVITY_ROLLUPS),
    "contacts": ACTIVITY_ROLLUPS,
}
# per rolled-up object type: the object types feeding it, and the properties of theirs it reads
# (their association, archiving and restoring count whatever the properties)
_DEAL_INPUTS = frozenset({"dealstage", "pipeline", "amount", "closedate", "hs_closed_won_date"})
_ACTIVITY_INPUTS = frozenset({"hs_timestamp"})
SOURCES: dict[str, dict[str, frozenset[str]]] = {
    "companies": {"contacts": frozenset(), "deals": _DEAL_INPUTS, **{e: _ACTIVITY_INPUTS for e in ENGAGEMENTS}},
    "contacts": {e: _ACTIVITY_INPUTS for e in ENGAGEMENTS},
}


def feeds(source_type: str, target_type: str, changed: Iterable[str] | None = None) -> bool:
    """Whether records of `source_type` (or these changed properties of theirs) feed `target_type`'s rollups."""
    inputs = SOURCES.get(target_type, {}).get(source_type)
    if inputs is None:
        return False
    return changed is None or not inputs.isdisjoint(changed)


def _amount(text: str | None) -> Decimal:
    try:
        return Decimal(text) if text else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _number(value: Decimal) -> str:
    """A sum as HubSpot renders a number: integers without a decimal point."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def deal_values(deals: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The deal rollups of a company from the properties of its live deals."""
    count = open_count = 0
    revenue = Decimal(0)
    recent: tuple[int, int, Mapping[str, str]] | None = None
    for i, deal in enumerate(deals):
        count += 1
        stage = deal.get("dealstage", "")
        if stage not in CLOSED_DEAL_STAGES:
            open_count += 1
        elif stage in WON_DEAL_STAGES:
            revenue += _amount(deal.get("amount"))
            closed = deal.get("closedate") or deal.get("hs_closed_won_date") or ""
            key = (parse_ms(closed) or -1, i, deal)
            if recent is None or key[:2] > recent[:2]:
                recent = key
    last = recent[2] if recent is not None else {}
    return {"num_associated_deals": str(count), "hs_num_open_deals": str(open_count),
            "total_revenue": _number(revenue), "recent_deal_amount": last.get("amount", ""),
            "recent_deal_close_date": last.get("closedate") or last.get("hs_closed_won_date") or ""}


def activity_values(stamps: Iterable[tuple[str, int | None]], floor: int = 0) -> dict[str, str]:
    """The last-activity rollups from (engagement type, `hs_timestamp` ms) pairs.

    `floor` is the latest activity of engagements the portal was seeded without (0: none left out).
    """
    last = sales = floor
    for object_type, ms in stamps:
        if ms is None:
            continue
        last = max(last, ms)
        if object_type in SALES_ACTIVITIES:
            sales = max(sales, ms)
    return {"notes_last_updated": iso(last) if last else "",
            "hs_last_sales_activity_timestamp": iso(sales) if sales else ""}


def _live(tables: Mapping[str, Table], assoc: Associations, object_type: str, rec_id: int,
          to_type: str) -> list[Record]:
    records = tables[to_type].records
    found = (records.get(i) for i in assoc.target_ids(object_type, rec_id, to_type))
    return [r for r in found if r is not None and not r.archived]


def compute(tables: Mapping[str, Table], assoc: Associations, object_type: str, rec_id: int,
            floor: int = 0) -> dict[str, str]:
    """Every rollup of one company or contact, from its live associated records ("" is no value)."""
    out: dict[str, str] = {}
    if object_type == "companies":
        out["num_associated_contacts"] = str(len(_live(tables, assoc, object_type, rec_id, "contacts")))
        out |= deal_values(r.props for r in _live(tables, assoc, object_type, rec_id, "deals"))
    stamps = ((t, parse_ms(r.props.get("hs_timestamp", ""))) for t in ENGAGEMENTS
              for r in _live(tables, assoc, object_type, rec_id, t))
    return out | activity_values(stamps, floor)
