"""Test hooks of the Salesforce sandbox: faults, statistics, mutations, outbound messages."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from defusedxml import ElementTree
from simple_salesforce import SalesforceGeneralError

from tests.sandbox.sf_fixtures import sandbox, sf  # noqa: F401

ACK = (b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
       b'<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
       b"</notificationsResponse></soapenv:Body></soapenv:Envelope>")
NS = {"s": "http://schemas.xmlsoap.org/soap/envelope/", "o": "http://soap.sforce.com/2005/09/outbound",
      "sf": "urn:sobject.enterprise.soap.sforce.com", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}


class Receiver:
    """A local endpoint that answers outbound messages from a script of replies (then always ACK)."""

    def __init__(self, replies: list[tuple[int, bytes]]) -> None:
        self.replies = list(replies)
        self.bodies: list[bytes] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                outer.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                status, body = outer.replies.pop(0) if outer.replies else (200, ACK)
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks/salesforce/test"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    made: list[Receiver] = []

    def make(replies: list[tuple[int, bytes]]) -> Receiver:
        made.append(Receiver(replies))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_burst_of_503_then_recovery_and_stats(sandbox, sf):  # noqa: F811
    sandbox.hook("DELETE", "stats")
    sandbox.hook("POST", "faults", {"fail_next": 3, "fail_status": 503})
    try:
        for _ in range(3):
            with pytest.raises(SalesforceGeneralError) as exc:
                sf.query("SELECT Id FROM Account LIMIT 1")
            assert exc.value.status == 503
            assert isinstance(exc.value.content, list) and exc.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
        assert sf.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
        stats = sandbox.hook("GET", "stats")
        assert stats["by_endpoint"]["GET /services/data/v<version:version>/query"] == 4
        assert sandbox.hook("GET", "faults")["injected"] == {"503": 3}
    finally:
        sandbox.hook("DELETE", "faults")


def test_share_of_errors_truncated_and_slow_responses(sandbox, sf):  # noqa: F811
    sandbox.hook("POST", "faults", {"error_rate": 0.5, "statuses": [500], "seed": 7, "path_contains": "/query"})
    try:
        failures = 0
        for _ in range(40):
            try:
                sf.query("SELECT Id FROM Account LIMIT 1")
            except SalesforceGeneralError as exc:
                assert exc.status == 500 and exc.content[0]["errorCode"] == "UNKNOWN_EXCEPTION"
                failures += 1
        assert 0 < failures < 40
        assert sandbox.hook("GET", "faults")["injected"]["500"] == failures
        assert sf.describe()["sobjects"]  # other paths are untouched
        sandbox.hook("DELETE", "faults")
        sandbox.hook("POST", "faults", {"truncate_rate": 1.0, "slow_rate": 1.0, "slow_ms": 10})
        with pytest.raises(requests.exceptions.JSONDecodeError):
            sf.query("SELECT Id, Name FROM Account LIMIT 5")
        assert sandbox.hook("GET", "faults")["injected"] == {"truncated": 1, "slow": 1}
        with pytest.raises(requests.HTTPError):
            sandbox.hook("POST", "faults", {"error_rate": 2})
    finally:
        sandbox.hook("DELETE", "faults")


def test_mutations_are_seeded_and_visible_to_incremental_queries(sandbox, sf):  # noqa: F811
    sandbox.hook("POST", "reset")
    stamp = sf.query("SELECT SystemModstamp FROM Case ORDER BY SystemModstamp DESC LIMIT 1")["records"][0]["SystemModstamp"]
    first = sandbox.hook("POST", "mutate", {"count": 60, "seed": 3})["changes"]
    sandbox.hook("POST", "reset")
    again = sandbox.hook("POST", "mutate", {"count": 60, "seed": 3})["changes"]
    assert first == again
    kinds = {c["kind"] for c in first}
    assert {"deal_stage", "close_case", "new_case"} <= kinds
    since = stamp.replace(".000+0000", "Z")
    changed = {r["Id"] for r in sf.query_all(f"SELECT Id FROM Case WHERE SystemModstamp > {since}",
                                             include_deleted=True)["records"]}
    case_changes = {c["id"] for c in first if c["object"] == "Case"}
    assert case_changes <= changed
    with pytest.raises(requests.HTTPError):
        sandbox.hook("POST", "mutate", {"count": 1, "kinds": ["explode"]})


def test_outbound_message_retried_until_the_exact_ack(sandbox, sf, receiver_factory):  # noqa: F811
    receiver = receiver_factory([
        (200, b"<ok/>"),  # 200 without the acknowledgement is not enough
        (500, b"boom"),
    ])
    sandbox.hook("POST", "outbound", {"url": receiver.url, "backoff_base": 0.05, "batch_window": 0.02,
                                      "rules": {"Account": ["Name", "Industry", "LastModifiedDate"]}})
    try:
        account = sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]
        sf.Account.update(account, {"Industry": "Energy"})
        assert _wait(lambda: sandbox.hook("GET", "outbound")["delivered"] == 1)
        status = sandbox.hook("GET", "outbound")
        assert [e["acked"] for e in status["log"]] == [False, False, True]
        assert len({tuple(e["notification_ids"]) for e in status["log"]}) == 1  # same dedupe key on every retry
        time.sleep(0.3)
        assert len(receiver.bodies) == 3  # nothing more after the acknowledgement

        root = ElementTree.fromstring(receiver.bodies[-1])
        note = root.find("s:Body/o:notifications", NS)
        assert note.findtext("o:OrganizationId", namespaces=NS) == sandbox.info["organization_id"]
        assert note.findtext("o:ActionId", namespaces=NS).startswith("04k")
        assert note.find("o:SessionId", NS).get(f"{{{NS['xsi']}}}nil") == "true"
        assert note.findtext("o:PartnerUrl", namespaces=NS).startswith(sandbox.info["instance_url"] + "/services/Soap/u/")
        item = note.find("o:Notification", NS)
        assert item.findtext("o:Id", namespaces=NS).startswith("04l")
        sobj = item.find("o:sObject", NS)
        assert sobj.get(f"{{{NS['xsi']}}}type") == "sf:Account"
        assert sobj.findtext("sf:Id", namespaces=NS) == account
        assert sobj.findtext("sf:Industry", namespaces=NS) == "Energy"
        assert sobj.findtext("sf:LastModifiedDate", namespaces=NS).endswith("Z")
    finally:
        sandbox.hook("DELETE", "outbound")


def test_outbound_batches_of_100_and_drop_after_horizon(sandbox, sf, receiver_factory):  # noqa: F811
    receiver = receiver_factory([])
    sandbox.hook("POST", "outbound", {"url": receiver.url, "backoff_base": 0.05, "batch_window": 0.3,
                                      "horizon": 86400, "rules": {"Contact": ["LastName"]}})
    try:
        sandbox.hook("POST", "mutate", {"count": 150, "seed": 1, "kinds": ["new_contact"]})
        assert _wait(lambda: sandbox.hook("GET", "outbound")["delivered"] == 150)
        sizes = sorted(len(ElementTree.fromstring(b).findall(".//o:Notification", NS)) for b in receiver.bodies)
        assert max(sizes) == 100 and sum(sizes) == 150

        dead = receiver_factory([(503, b"down")] * 1000)
        sandbox.hook("POST", "outbound", {"url": dead.url, "horizon": 0.4, "batch_window": 0.0})
        sandbox.hook("POST", "mutate", {"count": 1, "seed": 2, "kinds": ["new_contact"]})
        assert _wait(lambda: sandbox.hook("GET", "outbound")["dropped"] == 1)
        attempts = len(dead.bodies)
        time.sleep(0.3)
        assert attempts >= 2 and len(dead.bodies) == attempts
    finally:
        sandbox.hook("DELETE", "outbound")
        sandbox.hook("POST", "outbound", {"horizon": 86400, "batch_window": 0.1, "url": None})
