"""Cursor rules: closed start with look-back, (id, stamp, content) de-duplication, advance, storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.base import Change
from connector import cursors
from connector.connections import ensure_workspace
from connector.model import Connection
from connector.model import utcnow as now

T = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def ch(external_id: str, at: datetime, name: str = "x", **kw) -> Change:
    return Change("account", external_id, at, {"Id": external_id, "Name": name}, **kw)


def test_window_starts_closed_at_the_cursor_minus_the_look_back():
    assert cursors.window_start(cursors.Cursor(), 60, full=False) is None
    assert cursors.window_start(cursors.Cursor(T), 60, full=False) == T - timedelta(seconds=60)
    assert cursors.window_start(cursors.Cursor(T), 0, full=False) == T
    assert cursors.window_start(cursors.Cursor(T), 60, full=True) is None


def test_advance_takes_the_highest_stamp_and_remembers_who_was_seen_there():
    c = cursors.advance(cursors.Cursor(), [ch("a", T), ch("b", T + timedelta(seconds=1)), ch("c", T + timedelta(seconds=1))])
    assert c.value == T + timedelta(seconds=1) and sorted(c.seen) == ["b", "c"]
    same = cursors.advance(c, [ch("d", T + timedelta(seconds=1))])  # the stamp continues on the next page
    assert sorted(same.seen) == ["b", "c", "d"]
    back = cursors.advance(same, [ch("e", T)])  # never backwards
    assert back.value == same.value and back.seen == same.seen
    assert cursors.advance(same, []) == same


def test_seen_means_same_id_same_stamp_and_same_content():
    c = cursors.advance(cursors.Cursor(), [ch("a", T)])
    assert cursors.already_seen(c, ch("a", T))
    assert not cursors.already_seen(c, ch("a", T, name="changed in the same millisecond"))
    assert not cursors.already_seen(c, ch("a", T + timedelta(milliseconds=1)))
    assert not cursors.already_seen(c, ch("b", T))
    assert not cursors.already_seen(c, ch("a", T, deleted=True))


def test_changes_older_than_the_cursor_are_checked_against_the_stored_row():
    c = cursors.Cursor(T)
    assert cursors.needs_check(c, ch("a", T - timedelta(seconds=1)))
    assert not cursors.needs_check(c, ch("a", T)) and not cursors.needs_check(cursors.Cursor(), ch("a", T))
    stored = {"modified_at": T, "is_deleted": False, "merged_into": None, "raw": {"Id": "a", "Name": "x"}}
    assert cursors.unchanged(stored, ch("a", T))
    assert not cursors.unchanged(stored, ch("a", T, name="y"))
    assert not cursors.unchanged(stored, ch("a", T + timedelta(seconds=1)))
    assert not cursors.unchanged(stored, ch("a", T, deleted=True))
    gone = {**stored, "is_deleted": True, "merged_into": "b"}
    assert cursors.unchanged(gone, ch("a", T, deleted=True, merged_into="b"))
    assert not cursors.unchanged(gone, ch("a", T, deleted=True, merged_into="c"))
    assert cursors.unchanged(None, ch("a", T, deleted=True))  # nothing to delete
    assert not cursors.unchanged(None, ch("a", T, deleted=True, merged_into="b"))  # still re-point its children


def test_cursor_is_stored_and_reset_per_object(engine):
    ws = ensure_workspace(engine)
    with engine.begin() as conn:
        cid = conn.execute(Connection.__table__.insert().values(workspace_id=ws, name="c", kind="hubspot",
                                                                credentials_encrypted="", options={}, status="active",
                                                                created_at=now(), updated_at=now())).inserted_primary_key[0]
    c = cursors.advance(cursors.Cursor(), [ch("a", T), ch("b", T)])
    with engine.begin() as conn:
        cursors.save(conn, cid, "account", c)
        cursors.save(conn, cid, "contact", cursors.Cursor(T - timedelta(days=1)))
    with engine.begin() as conn:
        assert cursors.load(conn, cid, "account") == c
        cursors.save(conn, cid, "account", cursors.advance(c, [ch("z", T + timedelta(seconds=5))]))
    with engine.begin() as conn:
        assert cursors.load(conn, cid, "account").seen.keys() == {"z"}
        cursors.reset(conn, cid, "account")
        assert cursors.load(conn, cid, "account") == cursors.Cursor()
        assert cursors.load(conn, cid, "contact").value == T - timedelta(days=1)


def test_only_windowed_reads_save_the_cursor_page_by_page():
    assert cursors.saved_per_page(T) and not cursors.saved_per_page(None)


def test_a_whole_read_that_found_nothing_leaves_the_cursor_at_its_bound():
    assert cursors.after_whole_read(cursors.Cursor(), T) == cursors.Cursor(T, {})
    seen = cursors.Cursor(T - timedelta(seconds=5), {"a": "d"})
    assert cursors.after_whole_read(seen, T) == seen
