"""PostgreSQL: the synced records' connection is checked once per statement instead of once per row

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 20:10:00.000000

A foreign key runs its check for every inserted row (a query, a plan and a lock), which was a
quarter of the server's work when a sync stores a page of records. The same rule, kept by
triggers: each INSERT locks the distinct connections it references (FOR KEY SHARE, as the foreign
key would) and fails with foreign_key_violation when one is missing; an UPDATE that moves a record
to another connection is checked row by row; deleting a connection deletes its records (the
cascade); changing the id of a referenced connection is refused. SQLite keeps its foreign keys.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('account', 'contact', 'deal', 'case', 'activity')

FUNCTIONS = """
CREATE FUNCTION rapport_connection_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted integer[] := ARRAY(SELECT DISTINCT connection_id FROM new_rows);
    locked integer;
    missing integer;
BEGIN
    PERFORM 1 FROM connection WHERE id = ANY (wanted) FOR KEY SHARE;
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked < cardinality(wanted) THEN
        SELECT w INTO missing FROM unnest(wanted) AS w WHERE NOT EXISTS (SELECT 1 FROM connection c WHERE c.id = w) LIMIT 1;
        RAISE EXCEPTION 'insert on table "%" violates the connection reference', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (connection_id)=(%s) is not present in table "connection".', missing);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION rapport_connection_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM connection WHERE id = NEW.connection_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'update on table "%" violates the connection reference', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (connection_id)=(%s) is not present in table "connection".', NEW.connection_id);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION rapport_connection_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact WHERE connection_id IN (SELECT id FROM old_rows);
    DELETE FROM deal WHERE connection_id IN (SELECT id FROM old_rows);
    DELETE FROM "case" WHERE connection_id IN (SELECT id FROM old_rows);
    DELETE FROM activity WHERE connection_id IN (SELECT id FROM old_rows);
    DELETE FROM account WHERE connection_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;

CREATE FUNCTION rapport_connection_key_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM account WHERE connection_id = OLD.id)
       OR EXISTS (SELECT 1 FROM contact WHERE connection_id = OLD.id)
       OR EXISTS (SELECT 1 FROM deal WHERE connection_id = OLD.id)
       OR EXISTS (SELECT 1 FROM "case" WHERE connection_id = OLD.id)
       OR EXISTS (SELECT 1 FROM activity WHERE connection_id = OLD.id) THEN
        RAISE EXCEPTION 'update on table "connection" changes the id of a connection that has records'
            USING ERRCODE = 'foreign_key_violation', DETAIL = format('Key (id)=(%s) is still referenced.', OLD.id);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER connection_records_cascade AFTER DELETE ON connection
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION rapport_connection_cascade();
CREATE TRIGGER connection_key_kept BEFORE UPDATE OF id ON connection
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION rapport_connection_key_kept();
"""

TABLE_TRIGGERS = """
CREATE TRIGGER "{table}_connection_exists" AFTER INSERT ON "{table}"
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rapport_connection_exists();
CREATE TRIGGER "{table}_connection_moved" AFTER UPDATE OF connection_id ON "{table}"
    FOR EACH ROW WHEN (OLD.connection_id IS DISTINCT FROM NEW.connection_id) EXECUTE FUNCTION rapport_connection_moved();
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TABLES:
        op.drop_constraint(f'{table}_connection_id_fkey', table, type_='foreignkey')
    op.execute(FUNCTIONS)
    for table in TABLES:
        op.execute(TABLE_TRIGGERS.format(table=table))


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TABLES:
        op.execute(f'DROP TRIGGER "{table}_connection_exists" ON "{table}"')
        op.execute(f'DROP TRIGGER "{table}_connection_moved" ON "{table}"')
    op.execute('DROP TRIGGER connection_records_cascade ON connection')
    op.execute('DROP TRIGGER connection_key_kept ON connection')
    for name in ('exists', 'moved', 'cascade', 'key_kept'):
        op.execute(f'DROP FUNCTION rapport_connection_{name}()')
    for table in TABLES:
        op.create_foreign_key(f'{table}_connection_id_fkey', table, 'connection', ['connection_id'], ['id'],
                              ondelete='CASCADE')
