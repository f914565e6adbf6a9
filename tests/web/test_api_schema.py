"""schemathesis against the OpenAPI document: no 500 and no response outside the document, on every operation.

Each operation is fuzzed with generated values, and again with its path pointing at real things of
the caller's workspace, so both the 404 answers and the real ones are checked against the schema.
Adding a connection is left out: its generated hosts would be called (tested in test_oauth instead).
"""

from __future__ import annotations

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from connector import auth

pytestmark = pytest.mark.redis
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SKIP = {("POST", "/connections")}
EXAMPLES = 6


def test_the_api_keeps_its_documented_contract(app, tenants, web_engine) -> None:
    alpha = tenants[0]
    with web_engine.connect() as conn:
        uid = conn.execute(sa.text("SELECT id FROM user WHERE email = :e"), {"e": alpha.emails["admin"]}).scalar()
    token = auth.create_token(web_engine, int(uid), "schemathesis")[1]
    headers = {"Authorization": f"Bearer {token}"}
    real = {"connection_id": str(alpha.connection_id), "schedule_id": str(alpha.schedule_id),
            "run_id": str(alpha.run_id), "external_id": alpha.account, "version": "1", "kind": "hubspot",
            "object": "account"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        names = {p.name for p in operation.path_parameters}
        pinned = operation.as_strategy(path_parameters={k: v for k, v in real.items() if k in names})
        strategy = st.one_of(operation.as_strategy(), pinned) if names else operation.as_strategy()

        @given(case=strategy)
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
        tested += 1
    assert tested >= 25
