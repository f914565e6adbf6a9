"""Windowed reads: REST queryAll pages ascending by (SystemModstamp, Id), Bulk API 2.0 for big first syncs.

A window is read once; if its cursor dies midway the query resumes after the last record handed
out. A first sync whose first page reports more than the threshold reads the rest with a Bulk
2.0 queryAll job (unordered CSV), merged back into ascending order through sorted spill files.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import IO

import orjson

from adapters.base import Change, Page
from adapters.salesforce import mapping, soql
from adapters.salesforce import settings as S
from adapters.salesforce.client import SalesforceClient
from connector.errors import RapportError

Key = tuple[datetime, str]


@dataclass(frozen=True)
class Window:
    """What to read: one object's fields with since <= SystemModstamp < until."""

    object: str
    sobject: str
    fields: Sequence[str]
    types: dict[str, str]
    since: datetime | None
    until: datetime


@dataclass(frozen=True)
class ReadOptions:
    """Tunables of a read (defaults from settings, overridable per connection)."""

    bulk_threshold: int = S.BULK_READ_THRESHOLD
    bulk_page: int = S.BULK_RESULTS_PAGE
    bulk_poll: float = S.BULK_POLL_SECONDS
    page_size: int = S.QUERY_BATCH_SIZE


def _key(change: Change) -> Key:
    return (change.modified_at, change.external_id)


def _keep(change: Change, w: Window, after: Key | None) -> bool:
    if change.modified_at >= w.until or (w.since is not None and change.modified_at < w.since):
        return False
    return after is None or _key(change) > after


class Reader:
    """Pulls one window through a client."""

    def __init__(self, client: SalesforceClient, options: ReadOptions) -> None:
        self.client = client
        self.options = options

    def pull(self, w: Window, *, bulk_allowed: bool) -> Iterator[Page]:
        """Pages ascending by (modified_at, id); deletions and merges included."""
        after: Key | None = None
        while True:
            start = w.since if after is None else after[0]
            query = soql.window_query(w.sobject, w.fields, start, w.until)
            try:
                for number, page in enumerate(self.client.query_pages(query, object=w.object)):
                    changes = [
                        c
                        for c in (mapping.to_change(w.object, r) for r in page["records"])
                        if _keep(c, w, after)
                    ]
                    if changes:
                        after = _key(changes[-1])
                        yield Page(w.object, changes)
                    big = int(page.get("totalSize") or 0) > self.options.bulk_threshold
                    if number == 0 and bulk_allowed and big and not page.get("done", True):
                        yield from self._bulk(w, after)
                        return
                return
            except RapportError as exc:
                if exc.code != S.INVALID_LOCATOR:
                    raise
                # The server forgot the cursor: query again from the last record handed out.

    def _bulk(self, w: Window, after: Key | None) -> Iterator[Page]:
        start = w.since if after is None else after[0]
        query = soql.window_query(w.sobject, w.fields, start, w.until, ordered=False)
        spills: list[IO[bytes]] = []
        last: list[Change] = []  # the newest page stays in memory; earlier ones wait in spill files
        try:
            pages = self.client.bulk_query(
                w.sobject, query, poll=self.options.bulk_poll, page_size=self.options.bulk_page
            )
            for text in _ahead(pages):
                records = mapping.csv_records(w.sobject, text, w.types, self.client.api_version)
                changes = [c for c in (mapping.to_change(w.object, r) for r in records) if _keep(c, w, after)]
                changes.sort(key=_key)
                if last:
                    spills.append(_spill(last))
                last = changes
            streams = [*(_unspill(f, w.object) for f in spills), iter(last)]
            merged = heapq.merge(*streams, key=_key) if spills else iter(last)
            while batch := list(islice(merged, self.options.page_size)):
                yield Page(w.object, batch)
        finally:
            for f in spills:
                f.close()

    def fetch(self, object: str, sobject: str, fields: Sequence[str], ids: Sequence[str]) -> list[Change]:
        """Records by id through queryAll, so deleted ones come back deleted."""
        out: list[Change] = []
        for start in range(0, len(ids), S.COMPOSITE_BATCH):
            chunk = list(ids[start : start + S.COMPOSITE_BATCH])
            for page in self.client.query_pages(soql.ids_query(sobject, fields, chunk), object=object):
                out.extend(mapping.to_change(object, r) for r in page["records"])
        return out


def _ahead(pages: Iterator[str]) -> Iterator[str]:
    """The result pages, the next one downloading while the caller parses this one (the org builds
    a page while this process turns the last one into changes)."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(next, pages, None)
        while (page := pending.result()) is not None:
            pending = pool.submit(next, pages, None)
            yield page


def _spill(changes: Iterable[Change]) -> IO[bytes]:
    """Write sorted changes to a temporary file, one JSON line each, so memory stays flat."""
    f = tempfile.TemporaryFile(mode="w+b")
    f.writelines(orjson.dumps(c.raw, option=orjson.OPT_APPEND_NEWLINE) for c in changes)
    f.seek(0)
    return f


def _unspill(f: IO[bytes], object: str) -> Iterator[Change]:
    for line in f:
        yield mapping.to_change(object, orjson.loads(line))
