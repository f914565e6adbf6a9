"""Reading HubSpot records (the client room's read half): list, search windows, archived, fetch.

Full syncs page the list endpoint with associations inline; incremental syncs search on the
last-modified property, re-windowing from the last stamp seen when a window reaches the
10,000-result cap. Search returns no associations, and changing one does not bump the stamp (it
comes as an associationChange webhook, or with the next full sync). The Primary company is the
exception: contacts, deals and tickets carry it as a property HubSpot keeps, whose change bumps
the stamp, so it comes with the search. The rest is read (v4 batches of up to 1,000) only for
records created inside the window, or whose primary-company property is empty; the others carry
`_rapport.keep` and keep the association already stored (the sync engine fetches by id those it
never stored alive). Plain deletions show only in the archived list, read on full syncs and
reconcile runs (and on every run where no deletion webhook can arrive). Pipelines are read once
a run at most, and kept between runs in the connection's metadata cache (an hour by default): a
stage id the kept table lacks is read afresh, and a full sync reads them anew.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.objects import (
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
)

from adapters.base import Change, MetadataCache, NoCache, Page
from adapters.hubspot import mapping
from adapters.hubspot import settings as hs
from adapters.hubspot.client import HubSpotClient, next_after
from adapters.hubspot.webhooks import signing_secret
from connector.errors import ConfigError

_OBJ = "crm.objects"
_SHIFTED: list[dict[str, Any]] = []  # stands for a search page read after the results shifted


def object_types(unified: str) -> list[str]:
    """The HubSpot object types behind a unified object."""
    if unified == "activity":
        return list(hs.ACTIVITY_OBJECTS)
    if unified not in hs.OBJECTS:
        raise ConfigError(f"HubSpot has no object for {unified!r}", crm=hs.CRM,
                          hint=f"use one of {', '.join([*hs.OBJECTS, 'activity'])}")
    return [hs.OBJECTS[unified]]


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class Reader:
    """Turns HubSpot reads into Changes with `_rapport` values (account, contact, stage, kind)."""

    def __init__(self, client: HubSpotClient) -> None:
        self.c = client
        self.options = client.info.options
        self.stages: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        # object types whose pipelines come from HubSpot for the rest of this run, never from the
        # kept copy: read this run already, or about to be read anew by a full sync
        self.fresh: set[str] = set()
        self.cache: MetadataCache = NoCache()  # pipelines kept between runs (set by the connector)
        self.pipelines_ttl = hs.number_option(self.options, "pipelines_cache_seconds", hs.PIPELINES_CACHE_SECONDS,
                                              unit="seconds")
        self.association_batch = int(hs.number_option(self.options, "association_batch_limit",
                                                      hs.ASSOCIATION_BATCH_LIMIT, whole=True, minimum=1, unit="records"))
        # unified object -> read mapping; the sync engine may set the connection's own
        self.read_mapping: dict[str, dict[str, dict[str, Any]]] = mapping.DEFAULT_READ

    def properties(self, object_type: str) -> list[str]:
        """Default properties, those the read mapping names, and `options.properties.<type>`."""
        unified = next((u for u, t in hs.OBJECTS.items() if t == object_type), "activity")
        extra = (self.options.get("properties") or {}).get(object_type, ())
        return mapping.requested_properties(object_type, self.read_mapping.get(unified), extra=extra)

    # --- pull ---------------------------------------------------------------------------------

    def pull(self, unified: str, since: datetime | None, until: datetime, full: bool, *,
             reconcile: bool = False) -> Iterator[Page]:
        """Pages of Changes; incremental ones ascending by stamp, deletions and merges included.

        A reconcile run lists archived records as a full sync does and applies every one archived
        before `until`, so a deletion whose webhook was lost is caught however long ago it was.
        """
        types = object_types(unified)
        losers: set[str] = set()  # merged-away ids: their archived copy must not undo `merged_into`
        if full or since is None:
            for t in types:  # a full sync takes its pipelines as they are now, not as kept
                self.stages.pop(t, None)
                self.fresh.add(t)
            live = (change for t in types for records in self._listed(t, archived=False)
                    for change in self._changes(unified, t, records, until=until))
            for changes in _chunks(live, hs.PAGE_RECORDS):
                losers.update(c.external_id for c in changes if c.merged_into)
                yield Page(unified, changes)
            archived = (mapping.to_change(unified, t, r) for t in types
                        for records in self._listed(t, archived=True) for r in records)
            gone = (c for c in archived if c.external_id not in losers and c.modified_at < until)
            for changes in _chunks(gone, hs.PAGE_RECORDS):
                yield Page(unified, changes)
            return
        streams: list[Iterator[Change]] = [self._searched(unified, t, since, until) for t in types]
        binned = types if reconcile or self._archived_every_run() else []
        if binned:
            archived_now = [mapping.to_change(unified, t, r) for t in binned for records in self._listed(t, archived=True)
                            for r in records]
            streams.append(iter(sorted((g for g in archived_now if (reconcile or since <= g.modified_at)
                                        and g.modified_at < until), key=lambda g: g.modified_at)))
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda ch: ch.modified_at)
        for changes in _chunks(self._without_losers(merged, losers), hs.PAGE_RECORDS):
            yield Page(unified, changes)

    def _archived_every_run(self) -> bool:
        """Whether incremental runs list archived records of this type too (option `archived_pass`).

        HubSpot lists archived records by id only (no filter or sort on `archivedAt`), so this pass
        reads every archived record each time: ⌈archived/100⌉ calls per object type, growing with
        the recycle bin and not with the changes. "reconcile" leaves plain deletions to deletion
        webhooks (applied within seconds) and to full and reconcile runs (what a lost webhook
        missed); merges still arrive by search, as the survivor's stamp moves. "always" lists them
        on every run. "auto" (the default) is "reconcile" on a connection whose webhooks arrive (it
        has their signing secret, and events came within the last week) and "always" otherwise: an
        app installed without webhook subscriptions still sees deletions. Calls, emails and meetings
        send no deletion webhooks: with "reconcile" their deletions wait for the reconcile run.
        """
        mode = self.options.get("archived_pass") or hs.ARCHIVED_PASS_DEFAULT
        if mode not in hs.ARCHIVED_PASS_MODES:
            raise ConfigError(f"archived_pass must be one of {', '.join(hs.ARCHIVED_PASS_MODES)}, not {mode!r}",
                              crm=hs.CRM, hint="fix the connection's options")
        if mode == "auto":
            return signing_secret(self.c.secrets) is None or not self.c.info.webhooks_arriving
        return bool(mode == "always")

    @staticmethod
    def _without_losers(changes: Iterable[Change], losers: set[str]) -> Iterator[Change]:
        # a merge change and the loser's archived copy share a stamp; the merge sorts first
        for change in changes:
            if change.merged_into:
                losers.add(change.external_id)
            elif change.deleted and change.external_id in losers:
                continue
            yield change

    def _listed(self, t: str, *, archived: bool) -> Iterator[list[dict[str, Any]]]:
        assoc = [hs.COMPANIES, hs.CONTACTS] if t in hs.ASSOCIATED and not archived else None
        props = self.properties(t)

        def fetch(after: str | None) -> Any:
            return self.c.call_json(f"{_OBJ}.basic_api", "get_page", model=False, object=t, object_type=t,
                                    limit=hs.LIST_LIMIT, after=after, properties=props, associations=assoc,
                                    archived=archived)[1]

        for body in self.c.pages(fetch):
            yield list(body.get("results") or [])

    def _changes(self, unified: str, t: str, records: list[dict[str, Any]], *, until: datetime | None = None,
                 linked: Mapping[str, dict[str, str | None]] | None = None) -> list[Change]:
        """Changes of these records. `linked`: id -> the associations read for it, by associated type
        (a type missing is kept as stored); None for records listed with their associations inline."""
        out: list[Change] = []
        for record in records:
            ident = str(record["id"])
            record["_rapport"] = self._derived(t, record, None if linked is None else linked.get(ident, {}))
            change = mapping.to_change(unified, t, record)
            if until is not None and change.modified_at >= until:
                continue  # changed after the run started: the next incremental run takes it
            out.append(change)
            out.extend(mapping.merge_changes(unified, change))
        out.sort(key=lambda ch: ch.modified_at)
        return out

    # --- search windows -----------------------------------------------------------------------

    def _searched(self, unified: str, t: str, since: datetime, until: datetime) -> Iterator[Change]:
        """Changes in [since, until) by search; associations read only where needed, in full batches.

        A record's company is read only when no primary-company property names it, and its contact
        only when it was created inside the window. Records are held until those to read fill whole
        v4 batches (1,000) for every associated type pending, or until 10,000 are held, so that a
        window with a few new records among many changed ones costs one read per associated type,
        and a few companies to read among many contacts do not cost one read per batch of contacts.
        """
        block: list[dict[str, Any]] = []
        needs: list[tuple[str, ...]] = []
        pending: Counter[str] = Counter()  # records in the block to read, per associated type
        for records in self._search_windows(t, since, until):
            for record in records:
                need = self._needs(t, record, new=self._created_after(t, record, since))
                block.append(record)
                needs.append(need)
                pending.update(need)
                full = need and all(n % self.association_batch == 0 for n in pending.values())
                if full or len(block) >= hs.SEARCH_BLOCK_RECORDS:
                    yield from self._changes(unified, t, block, linked=self._read_links(t, block, needs))
                    block, needs, pending = [], [], Counter()
            if block and not pending and len(block) >= self.association_batch:  # nothing to read for these
                yield from self._changes(unified, t, block, linked=self._read_links(t, block, needs))
                block, needs = [], []
        if block:
            yield from self._changes(unified, t, block, linked=self._read_links(t, block, needs))

    @staticmethod
    def _needs(t: str, record: dict[str, Any], *, new: bool) -> tuple[str, ...]:
        """The associated types to read for a record: its contact when it is new, and its company
        when no primary-company property names it and it is new or has such a property (which
        empties when its Primary company goes, bumping the stamp)."""
        if t not in hs.ASSOCIATED:
            return ()
        prop = hs.PRIMARY_COMPANY_PROPERTY.get(t)
        named = prop is not None and bool((record.get("properties") or {}).get(prop))
        company = not named and (new or prop is not None)
        return tuple(to for to, wanted in ((hs.COMPANIES, company), (hs.CONTACTS, new)) if wanted)

    @staticmethod
    def _created_after(t: str, record: dict[str, Any], since: datetime) -> bool:
        # strictly: a window starts at the cursor, whose own records are stored already (one that is
        # not, as any record the store lacks, is read by id by the sync engine)
        created = mapping.created_stamp(t, record)
        return created is not None and created > since

    def _search_windows(self, t: str, since: datetime, until: datetime) -> Iterator[list[dict[str, Any]]]:
        """Search pages over [since, until), restarting from the last stamp at the 10,000 cap, or when
        a record left the results while they were paged (a user edited one already read: its new stamp
        is past the window, the later results move up one place, and paging by offset would pass over
        one of them)."""
        prop = hs.MODIFIED_PROPERTY[t]
        lower, op, skip = since, "GTE", set[str]()
        while True:
            filters = [(prop, op, mapping.epoch_ms(lower)), (prop, "LT", mapping.epoch_ms(until))]
            last: datetime | None = None
            at_last: set[str] = set()
            capped = shifted = False
            for records, more, consumed in self._search(t, filters, prop):
                if records is _SHIFTED:
                    shifted = True
                    break
                fresh = []
                for r in records:
                    stamp, ident = mapping.record_stamp(t, r), str(r["id"])
                    if stamp != last:
                        last, at_last = stamp, set()
                    at_last.add(ident)  # the ids skipped below too: a restart at this stamp must skip them
                    if stamp != lower or ident not in skip:
                        fresh.append(r)
                yield fresh
                if more and consumed + hs.SEARCH_LIMIT > hs.SEARCH_RESULT_CAP:
                    capped = True
                    break
            if shifted:
                if last is not None:  # on from the last page read whole; its last stamp's ids are skipped
                    lower, op, skip = last, "GTE", at_last
                continue
            if not capped or last is None:
                return
            if op == "GTE" and last == lower:
                # 10,000 records share one stamp: sweep that stamp by id, then continue after it
                yield from self._sweep_stamp(t, prop, lower, skip | at_last)
                op, skip = "GT", set()
                continue
            lower, op, skip = last, "GTE", at_last

    def _sweep_stamp(self, t: str, prop: str, stamp: datetime, seen: set[str]) -> Iterator[list[dict[str, Any]]]:
        last_id = "0"
        while True:
            filters = [(prop, "EQ", mapping.epoch_ms(stamp)), ("hs_object_id", "GT", last_id)]
            capped = False
            for records, more, consumed in self._search(t, filters, "hs_object_id"):
                if records is _SHIFTED:  # on after the last id read
                    capped = True
                    break
                yield [r for r in records if str(r["id"]) not in seen]
                if records:
                    last_id = str(records[-1]["id"])
                if more and consumed + hs.SEARCH_LIMIT > hs.SEARCH_RESULT_CAP:
                    capped = True
                    break
            if not capped:
                return

    def _search(self, t: str, filters: list[tuple[str, str, str]], sort: str
                ) -> Iterator[tuple[list[dict[str, Any]], bool, int]]:
        """(records, more pages?, records consumed so far) per search page, sorted ascending on `sort`;
        `_SHIFTED` in place of a page whose `total` fell below the first page's: a record left the
        results, so this page's offset may have passed over one. Records only leave a window while
        it is paged (a new stamp is past its end), never enter it."""
        group = FilterGroup(filters=[Filter(property_name=p, operator=o, value=v) for p, o, v in filters])
        props = self.properties(t)

        def fetch(after: str | None) -> Any:
            body = PublicObjectSearchRequest(filter_groups=[group], properties=props, limit=hs.SEARCH_LIMIT,
                                             after=after, sorts=[{"propertyName": sort, "direction": "ASCENDING"}])
            return self.c.call_json(f"{_OBJ}.search_api", "do_search", bucket="search", model=False, object=t,
                                    object_type=t, public_object_search_request=body)[1]

        consumed, first_total = 0, None
        for page in self.c.pages(fetch):
            total = page.get("total")
            first_total = total if first_total is None else first_total
            if isinstance(total, int) and isinstance(first_total, int) and total < first_total:
                yield _SHIFTED, False, consumed
                return
            records = list(page.get("results") or [])
            consumed += len(records)
            yield records, next_after(page) is not None, consumed

    # --- associations, pipelines, derived values ----------------------------------------------

    def _read_links(self, t: str, records: Sequence[dict[str, Any]], needs: Sequence[tuple[str, ...]]
                    ) -> dict[str, dict[str, str | None]]:
        """id -> {associated type: primary id or None} for the types each record needs read."""
        out: dict[str, dict[str, str | None]] = {str(r["id"]): {} for r in records}
        for to_type in hs.LINK_KEYS:
            ids = [str(r["id"]) for r, need in zip(records, needs, strict=True) if to_type in need]
            for ident, target in self._links(t, ids, to_type).items():
                out[ident][to_type] = target
        return out

    def _links(self, t: str, ids: Sequence[str], to_type: str) -> dict[str, str | None]:
        """id -> its primary associated `to_type` id (None when it has none), by v4 batch reads."""
        out: dict[str, str | None] = dict.fromkeys(ids)
        for chunk in _chunks(ids, self.association_batch):
            body = BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in chunk])
            found = self.c.call_json("crm.associations.v4.batch_api", "get_page", model=False, object=t,
                                     from_object_type=t, to_object_type=to_type,
                                     batch_input_public_fetch_associations_batch_request=body)[1]
            for result in (found or {}).get("results") or []:
                ident = str((result.get("from") or {}).get("id"))
                if ident in out:
                    out[ident] = mapping.primary_from_v4(result.get("to") or [])
        return out

    def _stage(self, t: str, pipeline: str | None, stage: str | None) -> dict[str, Any]:
        if not stage:
            return {"stage": None, "is_closed": False, "is_won": False}
        key = (str(pipeline or ""), str(stage))
        if t not in self.stages and self.pipelines_ttl > 0 and t not in self.fresh:
            kept = self.cache.get(f"pipelines:{t}")
            if isinstance(kept, list):
                self.stages[t] = mapping.stage_table(kept, t)
        if t not in self.stages or (key not in self.stages[t] and t not in self.fresh):
            self._read_pipelines(t)  # a stage the kept table lacks: the pipelines changed since
        found = self.stages[t].get(key)
        if found is None:  # stage ids are unique in a portal; tolerate a missing or odd pipeline id
            found = next((v for (_, s), v in self.stages[t].items() if s == key[1]), None)
        return dict(found) if found else {"stage": stage, "is_closed": False, "is_won": False}

    def _read_pipelines(self, t: str) -> None:
        found = self.c.call_json("crm.pipelines.pipelines_api", "get_all", object=t, object_type=t)[1]
        results = (found or {}).get("results") or []
        self.stages[t] = mapping.stage_table(results, t)
        self.fresh.add(t)
        if self.pipelines_ttl > 0:
            self.cache.set(f"pipelines:{t}", results, self.pipelines_ttl)

    def _derived(self, t: str, record: dict[str, Any], links: Mapping[str, str | None] | None) -> dict[str, Any]:
        props = record.get("properties") or {}
        out: dict[str, Any] = {}
        if t == hs.CONTACTS:
            out["account_id"] = str(props.get(hs.CONTACT_COMPANY_PROPERTY) or "") or None
        elif t in hs.ASSOCIATED:
            if links is None:  # listed with its associations inline
                assoc = record.get("associations")
                links = {to: mapping.primary_from_v3(assoc, to) for to in hs.LINK_KEYS}
            known = dict(links)
            named = props.get(hs.PRIMARY_COMPANY_PROPERTY.get(t, ""))
            if named:
                known[hs.COMPANIES] = str(named)
            out.update({key: known[to] for to, key in hs.LINK_KEYS.items() if to in known})
            keep = [key for to, key in hs.LINK_KEYS.items() if to not in known]
            if keep:
                out[hs.KEEP_STORED] = keep  # not read: what the sync stored stands
        if t in hs.PIPELINE_PROPERTY:
            pipe_prop, stage_prop = hs.PIPELINE_PROPERTY[t]
            out.update(self._stage(t, props.get(pipe_prop), props.get(stage_prop)))
        if t in hs.ACTIVITY_OBJECTS:
            out["kind"] = hs.ACTIVITY_OBJECTS[t]
            out["subject"] = props.get(hs.ACTIVITY_TITLE[t])
        return out

    # --- fetch by id --------------------------------------------------------------------------

    def fetch(self, unified: str, ids: Sequence[str]) -> list[Change]:
        """Current state of these records; merged-away ids point to the survivor, missing ones are deleted."""
        wanted = list(dict.fromkeys(str(i) for i in ids))
        found: dict[str, Change] = {}
        for t in object_types(unified):
            records: list[dict[str, Any]] = []
            for chunk in _chunks([i for i in wanted if i not in found], hs.BATCH_LIMIT):
                body = BatchReadInputSimplePublicObjectId(
                    inputs=[SimplePublicObjectId(id=i) for i in chunk], properties=self.properties(t),
                    properties_with_history=[])
                found_json = self.c.call_json(f"{_OBJ}.batch_api", "read", model=False, object=t, object_type=t,
                                              batch_read_input_simple_public_object_id=body, archived=False)[1]
                records += (found_json or {}).get("results") or []
            # the links of every record read, in v4 batches of 1,000 (not one per batch read of 100)
            linked = self._read_links(t, records, [self._needs(t, r, new=True) for r in records])
            for change in self._changes(unified, t, records, linked=linked):
                found.setdefault(change.external_id, change)
        now = datetime.now(UTC)
        return [found.get(i) or Change(object=unified, external_id=i, modified_at=now, raw={"id": i}, deleted=True)
                for i in wanted]

