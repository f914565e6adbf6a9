"""Mapping files: YAML export → import round trip, re-derivation from raw without CRM calls, CLI."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import adapters
from connector.cli import main
from connector.config import get_settings
from connector.errors import MappingError
from connector.mapping_files import dump, export_document, import_document, parse
from connector.mappings import load_mapping
from connector.model import FieldMapping
from connector.sync import reapply, sync_connection
from sandbox.memory import DEFAULT_READ, MemoryCRM
from tests.connector.sync_helpers import MEMORY, memory_connection, rows


@pytest.fixture
def crm(monkeypatch: pytest.MonkeyPatch) -> MemoryCRM:
    monkeypatch.setitem(adapters.ADAPTERS, "memory", MEMORY)
    return MemoryCRM(page_size=50)


@pytest.fixture
def synced(engine, make_settings, crm):
    settings = make_settings()
    cid, adapter = memory_connection(engine, settings, crm)
    for _ in range(3):
        account = crm.create("account", {"Segment__x": "ent"})
        crm.create("contact", {"AccountId": account})
    crm.tick()
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.now)
    return cid, adapter


def stored(engine, cid: int) -> list[tuple]:
    t = FieldMapping.__table__
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(t.c.object, t.c.direction, t.c.target, t.c.source, t.c.transform)
                                   .where(t.c.connection_id == cid)).all())


def test_export_then_import_round_trips(engine, synced):
    cid, adapter = synced
    text = dump(export_document(load_mapping(engine, cid, "memory"), connection="mem"))
    assert "Segment__x" in text and text.startswith("connection: mem\nkind: memory\nobjects:")
    import_document(engine, cid, parse(text), describe=adapter.describe)
    again = load_mapping(engine, cid, "memory")
    assert again.read == DEFAULT_READ and all(v == "stored" for v in again.origin.values())
    assert parse(dump(export_document(again, connection="mem"))) == parse(text)


def test_a_changed_mapping_is_reapplied_from_raw_records_without_calling_the_crm(engine, synced):
    cid, adapter = synced
    doc = export_document(load_mapping(engine, cid, "memory"), connection="mem", objects=["account"])
    doc["objects"]["account"]["read"]["name"] = {"source": "Website"}
    doc["objects"]["account"]["read"]["custom.segment"] = {"source": "Segment__x", "map": {"ent": "enterprise"}}
    del doc["objects"]["account"]["read"]["industry"]
    calls = adapter.api_calls
    imported = import_document(engine, cid, doc)  # no describe: the CRM is not asked anything
    assert adapter.api_calls == calls
    assert imported.tallies["account"].counts["account"]["updated"] == 3
    assert imported.new_sources == {}  # Website was read before (for the domain), so raw holds it
    for row in rows(engine, "account", cid).values():
        assert row["name"] == row["raw"]["Website"] and row["industry"] is None
        assert row["custom"] == {"segment": "enterprise"}
    contacts = rows(engine, "contact", cid).values()
    assert all(c["account_id"] is not None for c in contacts)  # untouched, still linked


def test_reapply_relinks_children_and_skips_records_the_new_mapping_cannot_read(engine, synced):
    cid, _ = synced
    doc = {"objects": {"contact": {"read": {**DEFAULT_READ["contact"], "title": {"source": "Email", "cast": "int"}}}}}
    import_document(engine, cid, doc)
    tally = reapply(engine, cid, "contact")
    assert tally.counts["contact"]["skipped"] == 3 and "contact.title from Email" in tally.errors[0]["message"]
    assert all(c["title"] != "x" and c["account_id"] for c in rows(engine, "contact", cid).values())


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"objects": {"account": {"read": {"name": {"source": "Nmae"}}}}}, r"account.name: source 'Nmae' names no field"),
        ({"objects": {"account": {"read": {"nmae": {"source": "Name"}}}}}, r"account.nmae: unknown unified field"),
        ({"objects": {"account": {"reed": {}}}}, r"mapping of account: expected `read:` and/or `write:`"),
        ({"objects": {"account": {"read": {}}}}, r"read mapping of account: expected at least one field"),
        ({"objects": {"lead": {"read": {"name": {"source": "Name"}}}}}, r"unknown object 'lead'"),
        ({"kind": "salesforce", "objects": {}}, r"this mapping is for a salesforce connection, not memory"),
        ({"objects": {"account": {"write": {"tier": 5}}}}, r"account.tier: the CRM field must be a field name"),
    ],
)
def test_a_bad_file_is_refused_whole_and_nothing_changes(engine, synced, doc, message):
    cid, adapter = synced
    doc = {"objects": {"contact": {"read": {"email": {"source": "Email"}}}, **doc["objects"]},
           **{k: v for k, v in doc.items() if k != "objects"}}
    before = rows(engine, "contact", cid)
    with pytest.raises(MappingError, match=message):
        import_document(engine, cid, doc, describe=adapter.describe)
    assert stored(engine, cid) == [] and rows(engine, "contact", cid) == before


def test_yaml_syntax_errors_name_the_line():
    with pytest.raises(MappingError, match=r"not valid YAML at line 3, column 1: found character '\\t'"):
        parse("objects:\n  account:\n\tread: {}\n")
    with pytest.raises(MappingError, match=r"no `objects:` section"):
        parse("- just a list\n")


@pytest.fixture
def cli_env(engine, monkeypatch, tmp_path):
    if engine.dialect.name != "sqlite":
        pytest.skip("the CLI test runs on the SQLite file only")
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RAPPORT_ENV", "test")
    monkeypatch.setenv("RAPPORT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_show_export_import(engine, synced, crm, cli_env, tmp_path, monkeypatch):
    cid, adapter = synced
    monkeypatch.setattr(MemoryCRM, "named", {"mem": crm})  # the adapter the CLI opens finds this CRM
    runner = CliRunner()
    shown = runner.invoke(main, ["mappings", "show", "mem", "--object", "account"])
    assert shown.exit_code == 0, shown.output
    assert "account read (default)" in shown.output and "employees" in shown.output and "contact" not in shown.output

    path = tmp_path / "mapping.yaml"
    assert runner.invoke(main, ["mappings", "export", "mem", str(path)]).exit_code == 0
    path.write_text(path.read_text().replace("source: Name", "source: Website", 1))
    done = runner.invoke(main, ["mappings", "import", "mem", str(path), "--object", "account"])
    assert done.exit_code == 0, done.output
    assert "account: re-derived 3 row(s)" in done.output and "--full" not in done.output
    assert {r["name"] for r in rows(engine, "account", cid).values()} == {
        r["raw"]["Website"] for r in rows(engine, "account", cid).values()}

    path.write_text(path.read_text().replace("source: Website", "source: Webiste", 1))
    bad = runner.invoke(main, ["mappings", "import", "mem", str(path)])
    assert bad.exit_code == 2 and "account.name: source 'Webiste' names no field" in bad.output
    assert "did you mean Website?" in bad.output
    shown = runner.invoke(main, ["mappings", "show", "mem", "--object", "account"])
    assert "account read (stored)" in shown.output and "<- Website" in shown.output

    path.write_text(path.read_text().replace("source: Webiste", "source: Segment__x", 1)
                    .replace("source: Industry", "source: OwnerId", 1))
    done = runner.invoke(main, ["mappings", "import", "mem", str(path), "--no-check"])
    assert done.exit_code == 0, done.output
    assert "account now reads" not in done.output  # both were read already
    path.write_text(path.read_text().replace("source: Segment__x", "source: Rating__x", 1))
    done = runner.invoke(main, ["mappings", "import", "mem", str(path), "--no-check"])
    assert "account now reads Rating__x" in done.output and "rapport sync mem --full" in done.output
