"""PostgreSQL: scores and their history check their connection once per statement, as records do

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 00:40:00.000000

Scoring a large portfolio writes a million `score` rows and as many `score_history` snapshots in
one statement; their foreign keys ran a check per row (a query and a lock), about a third of that
statement's time. They get the triggers of migration 0003: the inserted rows' connections are locked and
checked once per statement, a row moved to another connection is checked, deleting a connection
deletes its scores and history, and a connection that has any keeps its id. SQLite keeps its
foreign keys.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORDS = ('contact', 'deal', 'case', 'activity', 'account')  # the order 0003 deletes them in
SCORES = ('score', 'score_history')

TABLE_TRIGGERS = """
CREATE TRIGGER "{table}_connection_exists" AFTER INSERT ON "{table}"
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rapport_connection_exists();
CREATE TRIGGER "{table}_connection_moved" AFTER UPDATE OF connection_id ON "{table}"
    FOR EACH ROW WHEN (OLD.connection_id IS DISTINCT FROM NEW.connection_id) EXECUTE FUNCTION rapport_connection_moved();
"""


def _functions(tables: Sequence[str]) -> str:
    """The cascade and the kept-id check of migration 0003, over `tables`."""
    deletes = "\n".join(f'    DELETE FROM "{t}" WHERE connection_id IN (SELECT id FROM old_rows);' for t in tables)
    referenced = "\n       OR ".join(f'EXISTS (SELECT 1 FROM "{t}" WHERE connection_id = OLD.id)' for t in tables)
    return f"""
CREATE OR REPLACE FUNCTION rapport_connection_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{deletes}
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION rapport_connection_key_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {referenced} THEN
        RAISE EXCEPTION 'update on table "connection" changes the id of a connection that has records'
            USING ERRCODE = 'foreign_key_violation', DETAIL = format('Key (id)=(%s) is still referenced.', OLD.id);
    END IF;
    RETURN NEW;
END $$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in SCORES:
        op.drop_constraint(f'{table}_connection_id_fkey', table, type_='foreignkey')
        op.execute(TABLE_TRIGGERS.format(table=table))
    op.execute(_functions((*SCORES, *RECORDS)))


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(_functions(RECORDS))
    for table in SCORES:
        op.execute(f'DROP TRIGGER "{table}_connection_exists" ON "{table}"')
        op.execute(f'DROP TRIGGER "{table}_connection_moved" ON "{table}"')
        op.create_foreign_key(f'{table}_connection_id_fkey', table, 'connection', ['connection_id'], ['id'],
                              ondelete='CASCADE')
