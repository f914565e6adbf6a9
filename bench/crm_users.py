"""A CRM user for the benchmarks: makes changes and reads score fields through the CRM's own API, with
the official client, the way a rep in the CRM (or another integration) would."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from adapters.hubspot import settings as hs
from adapters.salesforce import settings as sf

BIG_WIN = 5_000_000  # a deal this size moves any account's value component


class CrmUser(Protocol):
    """What the benchmark needs from a CRM."""

    kind: str

    def win_deal(self, account_id: str, n: int) -> str: ...

    def scores(self, account_ids: Sequence[str]) -> dict[str, float | None]: ...


class SalesforceUser:
    """simple-salesforce over the sandbox's HTTPS with its private CA."""

    kind = sf.CRM

    def __init__(self, info: dict[str, Any]) -> None:
        from simple_salesforce import Salesforce

        session = requests.Session()
        session.verify = info["ca_bundle"]
        session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify
        self.sf = Salesforce(instance_url=info["instance_url"], session_id=info["access_token"], session=session,
                             version=sf.API_VERSION)
        self.field = sf.SCORE_FIELDS["relationship_score"]

    def win_deal(self, account_id: str, n: int) -> str:
        """Create a closed-won renewal on the account; its id."""
        opportunity: Any = self.sf.Opportunity  # SFType, resolved by attribute at run time
        return str(opportunity.create({"AccountId": account_id, "Name": f"Bench renewal {n}", "StageName": "Closed Won",
                                    "CloseDate": datetime.now(UTC).date().isoformat(), "Amount": BIG_WIN,
                                    "Type": "Renewal"})["id"])

    def scores(self, account_ids: Sequence[str]) -> dict[str, float | None]:
        """The relationship score field of these accounts, as the CRM shows it."""
        out: dict[str, float | None] = {}
        for start in range(0, len(account_ids), 200):
            ids = ",".join(f"'{i}'" for i in account_ids[start:start + 200])
            rows = self.sf.query_all(f"SELECT Id, {self.field} FROM Account WHERE Id IN ({ids})")["records"]
            out.update({r["Id"]: r[self.field] for r in rows})
        return out


class HubSpotUser:
    """hubspot-api-client against the sandbox's api_base."""

    kind = hs.CRM

    def __init__(self, info: dict[str, Any]) -> None:
        from hubspot import HubSpot

        self.client = HubSpot(access_token=info["access_token"], host=info["api_base"])
        self.prop = hs.SCORE_PROPERTIES["relationship_score"]

    def win_deal(self, account_id: str, n: int) -> str:
        """Create a closed-won deal associated with the company; its id."""
        from hubspot.crm.deals import (
            AssociationSpec,
            PublicAssociationsForObject,
            PublicObjectId,
            SimplePublicObjectInputForCreate,
        )

        body = SimplePublicObjectInputForCreate(
            properties={"dealname": f"Bench renewal {n}", "amount": str(BIG_WIN), "pipeline": "default",
                        "dealstage": "closedwon", "dealtype": "existingbusiness",
                        "closedate": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")},
            associations=[PublicAssociationsForObject(
                to=PublicObjectId(id=account_id),
                types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=5)])],
        )
        return str(self.client.crm.deals.basic_api.create(simple_public_object_input_for_create=body).id)

    def scores(self, account_ids: Sequence[str]) -> dict[str, float | None]:
        """The relationship score property of these companies, as the CRM shows it."""
        from hubspot.crm.companies import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

        out: dict[str, float | None] = {}
        for start in range(0, len(account_ids), hs.BATCH_LIMIT):
            body = BatchReadInputSimplePublicObjectId(
                properties=[self.prop], inputs=[SimplePublicObjectId(id=i) for i in account_ids[start:start + 100]])
            result = self.client.crm.companies.batch_api.read(batch_read_input_simple_public_object_id=body)
            for r in result.results:
                value = r.properties.get(self.prop)
                out[r.id] = float(value) if value not in (None, "") else None
        return out
