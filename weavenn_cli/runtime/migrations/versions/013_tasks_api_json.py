"""each task's API JSON kept beside it on PostgreSQL (a generated column)

Revision ID: 013
Revises: 012

Listing tasks is the API's busiest route, and formatting each row into the API's JSON (three
instants through to_char, the tags compacted, row_to_json) was most of what PostgreSQL spent on
a page: about 13 µs a row, against 2 µs to read it. `tasks.api_json` holds that JSON, computed
by PostgreSQL whenever a row is written, whoever writes it (the API, a dual-write mirror, a
backfill's COPY), so a page is a concatenation of stored texts. Writing a task costs the
formatting once instead of every read.

The column is generated, so it cannot go stale and nobody writes it. A generated column needs
an IMMUTABLE expression: `task_api_json` is declared so although to_char is only STABLE,
because to_char is STABLE for its locale-dependent patterns (month and day names), which this
format does not use, and the instants are converted with an explicit time zone, so the session's
TimeZone does not matter either.

The JSON is `Task`'s, byte for byte (a test compares them): fields in the model's order, compact;
instants in UTC with "Z", microseconds only when there are some; NULL tags and flags as empty
and false. jsonb writes `", "` between an array's strings where pydantic writes `","`: the
replacement is exact unless a tag holds `\\", ` (its text then has `\\", "`), and those rare
arrays are rebuilt element by element.

Adding the column rewrites the table once. SQLite: nothing (its list formats rows in Python).
"""

from __future__ import annotations

from alembic import op

revision = "013"
down_revision = "012"
branch_labels = None
depends_on = None

ARGUMENTS = (
    "id text, project_id text, title text, status text, due_date timestamptz, tags jsonb, "
    "completed boolean, created_at timestamptz, updated_at timestamptz"
)
CALL = "id, project_id, title, status, due_date, tags, completed, created_at, updated_at"


def _instant(name: str) -> str:
    return (
        f"coalesce('\"' || replace(to_char({name} AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '.000000Z', 'Z') || '\"', 'null')"
    )


def _string(name: str) -> str:
    return f"coalesce(to_json({name})::text, 'null')"


# PL/pgSQL rather than SQL: a SQL function that is not inlined (none is, in a generated
# column) is planned again for every statement, which made a one-row INSERT cost twice as
# much; PL/pgSQL keeps its plans for the session. Concatenation rather than row_to_json: one
# expression, no subquery.
FUNCTION = f"""
CREATE FUNCTION task_api_json({ARGUMENTS}) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    tags_json text := coalesce(tags, '[]')::text;
BEGIN
    IF strpos(tags_json, '\\", "') = 0 THEN
        tags_json := replace(tags_json, '", "', '","');
    ELSE
        tags_json := array_to_json(ARRAY(SELECT jsonb_array_elements(tags)))::text;
    END IF;
    RETURN '{{"id":' || {_string("id")} || ',"project_id":' || {_string("project_id")}
        || ',"title":' || {_string("title")} || ',"status":' || {_string("status")}
        || ',"due_date":' || {_instant("due_date")} || ',"tags":' || tags_json
        || ',"completed":' || coalesce(completed, false)::text
        || ',"created_at":' || {_instant("created_at")}
        || ',"updated_at":' || {_instant("updated_at")} || '}}';
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute(
        "ALTER TABLE tasks ADD COLUMN api_json text "
        f"GENERATED ALWAYS AS (task_api_json({CALL})) STORED"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE tasks DROP COLUMN api_json")
    op.execute(f"DROP FUNCTION task_api_json({ARGUMENTS})")
