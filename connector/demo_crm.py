"""The demo's CRM users: read scores and make live changes through the official CRM clients
(simple-salesforce, hubspot-api-client), the way a sales rep's tools would see and touch the records.

Field names come from the connection's read mapping and the adapters' settings; values from the
CRM's own metadata (picklists, pipelines), so a change means to the CRM what the mapping says.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import Any

import requests

from adapters.hubspot import settings as hs
from adapters.hubspot.mapping import stage_table
from adapters.salesforce import settings as S
from connector.errors import ConfigError

PROPERTIES_PREFIX = "properties."


def _source(read: dict[str, dict[str, Any]], object: str, field: str) -> str:
    spec = read.get(object, {}).get(field) or {}
    source = spec.get("source")
    if not source:
        raise ConfigError(f"the connection's mapping does not read {object}.{field}",
                          hint="map it (rapport mappings import) to let the demo change it")
    return str(source)


def _crm_value(read: dict[str, dict[str, Any]], object: str, field: str, wanted: str, allowed: list[str]) -> str:
    """The CRM value (among `allowed`) that the mapping reads as the unified value `wanted`."""
    table = (read.get(object, {}).get(field) or {}).get("map") or {}
    for value in allowed:
        if table.get(value, value) == wanted:
            return value
    raise ConfigError(f"no {object}.{field} value of the CRM means {wanted!r} to the mapping (CRM has {allowed})")


class SalesforceView:
    """A Salesforce user with an API session, through simple-salesforce."""

    kind = S.CRM

    def __init__(self, instance_url: str, access_token: str, ca_bundle: str | None,
                 read: dict[str, dict[str, Any]], targets: dict[str, str]) -> None:
        from simple_salesforce import Salesforce

        session = requests.Session()
        if ca_bundle:
            session.verify = ca_bundle
        session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify
        self.calls = 0  # requests this user sent (the CRM counts them too)
        session.hooks["response"].append(self._count)
        self.sf = Salesforce(instance_url=instance_url, session_id=access_token, session=session,
                             version=S.API_VERSION)
        self.read, self.targets = read, targets

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.calls += 1

    def _type(self, object: str) -> Any:
        return getattr(self.sf, S.OBJECTS[object])

    def scores(self, account_id: str) -> dict[str, Any]:
        """The account's score fields as Salesforce returns them, by score key."""
        record = self._type("account").get(account_id)
        return {key: record.get(field) for key, field in self.targets.items()}

    def accounts(self) -> tuple[int, list[str]]:
        """How many live accounts the org has, and the ids of those without a relationship score."""
        field = self.targets["relationship_score"]
        rows = self.sf.query_all(f"SELECT {S.ID_FIELD}, {field} FROM {S.OBJECTS['account']}")["records"]
        return len(rows), [r[S.ID_FIELD] for r in rows if r.get(field) is None]

    def win_deal(self, deal_id: str, amount: float) -> str:
        """Move an open opportunity to the org's won stage with a big amount, closing today."""
        stage, won = _source(self.read, "deal", "stage"), _source(self.read, "deal", "is_won")
        rows = self.sf.query(f"SELECT {stage} FROM {S.OBJECTS['deal']} WHERE {won} = true LIMIT 1")["records"]
        if not rows:
            raise ConfigError("the org has no won opportunity to learn its won stage from")
        values = {stage: rows[0][stage], _source(self.read, "deal", "amount"): amount,
                  _source(self.read, "deal", "close_date"): datetime.now(UTC).date().isoformat()}
        self._type("deal").update(deal_id, values)
        return f"{S.OBJECTS['deal']} {deal_id}: " + ", ".join(f"{k}={v}" for k, v in values.items())

    def escalate_case(self, case_id: str) -> str:
        """Raise an open case to the most urgent priority and escalate it (it stays open)."""
        described = {f["name"]: f for f in self._type("case").describe()["fields"]}

        def picklist(field: str, wanted: str) -> tuple[str, str]:
            name = _source(self.read, "case", field)
            allowed = [v["value"] for v in described[name].get("picklistValues") or [] if v.get("active", True)]
            return name, _crm_value(self.read, "case", field, wanted, allowed)

        values: dict[str, Any] = dict([picklist("priority", "urgent"), picklist("status", "escalated")])
        values[_source(self.read, "case", "is_escalated")] = True
        self._type("case").update(case_id, values)
        return f"{S.OBJECTS['case']} {case_id}: " + ", ".join(f"{k}={v}" for k, v in values.items())


def _property(read: dict[str, dict[str, Any]], object: str, field: str) -> str:
    source = _source(read, object, field)
    if not source.startswith(PROPERTIES_PREFIX):
        raise ConfigError(f"the mapping reads {object}.{field} from {source}, not from a property the demo can set")
    return source[len(PROPERTIES_PREFIX):]


class HubSpotView:
    """A HubSpot user of the portal, through hubspot-api-client (private-app token)."""

    kind = hs.CRM

    def __init__(self, api_base: str, access_token: str, read: dict[str, dict[str, Any]],
                 targets: dict[str, str]) -> None:
        from hubspot import HubSpot

        self.client = HubSpot(access_token=access_token, host=api_base)
        self.read, self.targets = read, targets
        self.calls = 0  # requests this user sent (the CRM counts them too)

    def _api(self, object: str) -> Any:
        return getattr(self.client.crm, hs.OBJECTS[object])

    def _update(self, object: str, record_id: str, properties: dict[str, str]) -> str:
        model = importlib.import_module(f"hubspot.crm.{hs.OBJECTS[object]}").SimplePublicObjectInput
        self.calls += 1
        self._api(object).basic_api.update(record_id, model(properties=properties))
        return f"{hs.OBJECTS[object]} {record_id}: " + ", ".join(f"{k}={v}" for k, v in properties.items())

    def scores(self, account_id: str) -> dict[str, Any]:
        """The company's score properties as HubSpot returns them, by score key."""
        self.calls += 1
        found = self._api("account").basic_api.get_by_id(account_id, properties=list(self.targets.values()))
        props = found.properties or {}
        return {key: props.get(name) or None for key, name in self.targets.items()}

    def accounts(self) -> tuple[int, list[str]]:
        """How many live companies the portal has, and the ids of those without a relationship score."""
        name = self.targets["relationship_score"]
        total, missing, after = 0, [], None
        while True:
            self.calls += 1
            page = self._api("account").basic_api.get_page(limit=hs.LIST_LIMIT, after=after, properties=[name])
            total += len(page.results)
            missing += [c.id for c in page.results if not (c.properties or {}).get(name)]
            after = page.paging.next.after if page.paging and page.paging.next else None
            if after is None:
                return total, missing

    def win_deal(self, deal_id: str, amount: float) -> str:
        """Move an open deal to its pipeline's won stage with a big amount, closing today."""
        pipeline_property, stage_property = hs.PIPELINE_PROPERTY[hs.OBJECTS["deal"]]
        self.calls += 2
        deal = self._api("deal").basic_api.get_by_id(deal_id, properties=[pipeline_property])
        pipeline = (deal.properties or {}).get(pipeline_property)
        pipelines = self.client.crm.pipelines.pipelines_api.get_all(object_type=hs.OBJECTS["deal"]).results
        table = stage_table([p.to_dict() for p in pipelines], hs.OBJECTS["deal"])
        won = next((key[1] for key, stage in table.items() if key[0] == pipeline and stage["is_won"]), None)
        if won is None:
            raise ConfigError(f"deal pipeline {pipeline!r} has no won stage")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return self._update("deal", deal_id, {stage_property: won, _property(self.read, "deal", "amount"): f"{amount:.0f}",
                                              _property(self.read, "deal", "close_date"): now})

    def escalate_case(self, case_id: str) -> str:
        """Raise an open ticket to the most urgent priority and escalate it (its stage stays open)."""
        priority = _property(self.read, "case", "priority")
        self.calls += 1
        described = self.client.crm.properties.core_api.get_by_name(hs.OBJECTS["case"], priority)
        allowed = [o.value for o in described.options or [] if not getattr(o, "hidden", False)]
        return self._update("case", case_id, {priority: _crm_value(self.read, "case", "priority", "urgent", allowed),
                                              _property(self.read, "case", "is_escalated"): "true"})
