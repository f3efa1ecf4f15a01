"""vault shadow cache (notes, tags, headings, links, versions), full-text search, published files

Revision ID: 006
Revises: 005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "006"
down_revision = "005"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
PATH = sa.String(1024)

# SQLite: an external-content FTS5 table over notes(title, body), kept in step by triggers.
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE notes_fts USING fts5(title, body, content='notes', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes BEGIN "
    "INSERT INTO notes_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER notes_fts_delete AFTER DELETE ON notes BEGIN "
    "INSERT INTO notes_fts(notes_fts, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); END",
    "CREATE TRIGGER notes_fts_update AFTER UPDATE OF title, body ON notes BEGIN "
    "INSERT INTO notes_fts(notes_fts, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); "
    "INSERT INTO notes_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
]
# PostgreSQL: a generated tsvector (title weighs more than body) with a GIN index. The
# 'simple' configuration does not stem, like FTS5's unicode61: a vault mixes languages.
# left() keeps a huge note under the 1 MB a tsvector may hold.
POSTGRES_FTS = [
    "ALTER TABLE notes ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('simple', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('simple', left(coalesce(body, ''), 500000)), 'B')) STORED",
    "CREATE INDEX ix_notes_search_vector ON notes USING gin (search_vector)",
]


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("path", PATH, nullable=False),
        sa.Column("name_key", sa.String(255), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("node_type", sa.String(255), nullable=True),
        sa.Column("frontmatter", JSON, nullable=False),
        sa.Column("aliases", JSON, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_truncated", sa.Boolean(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("parse_error", sa.Text(), nullable=True),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notes"),
        sa.UniqueConstraint("path", name="uq_notes_path"),
    )
    op.create_index("ix_notes_name_key", "notes", ["name_key"])
    op.create_table(
        "note_tags",
        sa.Column("note_id", AUTO_ID, nullable=False),
        sa.Column("tag_key", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["note_id"], ["notes.id"], name="fk_note_tags_note_id_notes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("note_id", "tag_key", name="pk_note_tags"),
    )
    op.create_index("ix_note_tags_tag_key", "note_tags", ["tag_key"])
    op.create_table(
        "note_headings",
        sa.Column("note_id", AUTO_ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["note_id"], ["notes.id"], name="fk_note_headings_note_id_notes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("note_id", "position", name="pk_note_headings"),
    )
    op.create_table(
        "note_links",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("note_id", AUTO_ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("heading", sa.Text(), nullable=True),
        sa.Column("block", sa.String(255), nullable=True),
        sa.Column("alias", sa.Text(), nullable=True),
        sa.Column("embed", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target_kind", sa.String(16), nullable=False),
        sa.Column("target_name", sa.String(255), nullable=True),
        sa.Column("resolved_path", PATH, nullable=True),
        sa.ForeignKeyConstraint(
            ["note_id"], ["notes.id"], name="fk_note_links_note_id_notes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_note_links"),
    )
    op.create_index("ix_note_links_note_id", "note_links", ["note_id"])
    op.create_index("ix_note_links_target_name", "note_links", ["target_name"])
    op.create_index("ix_note_links_resolved_path", "note_links", ["resolved_path"])
    op.create_table(
        "note_versions",
        sa.Column("path", PATH, nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("path", name="pk_note_versions"),
    )
    op.create_table(
        "published_files",
        sa.Column("vault_id", sa.String(255), nullable=False),
        sa.Column("path", PATH, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("vault_id", "path", name="pk_published_files"),
    )
    for statement in SQLITE_FTS if _dialect() == "sqlite" else POSTGRES_FTS:
        op.execute(statement)


def downgrade() -> None:
    if _dialect() == "sqlite":
        for trigger in ("notes_fts_update", "notes_fts_delete", "notes_fts_insert"):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE notes_fts")
    else:
        op.drop_index("ix_notes_search_vector", "notes")
    op.drop_table("published_files")
    op.drop_table("note_versions")
    op.drop_index("ix_note_links_resolved_path", "note_links")
    op.drop_index("ix_note_links_target_name", "note_links")
    op.drop_index("ix_note_links_note_id", "note_links")
    op.drop_table("note_links")
    op.drop_table("note_headings")
    op.drop_index("ix_note_tags_tag_key", "note_tags")
    op.drop_table("note_tags")
    op.drop_index("ix_notes_name_key", "notes")
    op.drop_table("notes")


def _dialect() -> str:
    return str(op.get_context().dialect.name)
