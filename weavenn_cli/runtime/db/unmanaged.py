"""Schema objects the migrations create but the models do not describe.

Full-text search differs per database (an FTS5 virtual table with its shadow tables on
SQLite, a generated tsvector column and its GIN index on PostgreSQL); on PostgreSQL each task
also keeps its API JSON in a generated column (revision 013). Schema comparison
(`weavenn migrate check`, alembic autogenerate) must not report them as differences.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Literal

NameType = Literal[
    "schema",
    "table",
    "column",
    "index",
    "unique_constraint",
    "foreign_key_constraint",
    "check_constraint",
]

# notes_fts and the tables FTS5 keeps for it: notes_fts_data, _idx, _docsize, _config.
NOTES_FTS_TABLE = "notes_fts"
NOTES_SEARCH_COLUMN = "search_vector"
NOTES_SEARCH_INDEX = "ix_notes_search_vector"
TASKS_JSON_COLUMN = "api_json"


def include_name(
    name: str | None, type_: NameType, parent_names: MutableMapping[Any, str | None]
) -> bool:
    """Alembic `include_name` hook: False for the full-text search objects."""
    if name is None:
        return True
    if type_ == "table":
        return not (name == NOTES_FTS_TABLE or name.startswith(NOTES_FTS_TABLE + "_"))
    if type_ == "column":
        table = parent_names.get("table_name")
        return not (
            (table == "notes" and name == NOTES_SEARCH_COLUMN)
            or (table == "tasks" and name == TASKS_JSON_COLUMN)
        )
    if type_ == "index":
        return name != NOTES_SEARCH_INDEX
    return True
