"""baseline: the extensions later tables rely on.

``citext`` gives case-insensitive emails with a plain unique index; ``pg_trgm`` is there for the planned search's
fuzzy matching of names (trigram similarity; nothing uses it yet). Both are trusted extensions in PostgreSQL
13+, so the database owner (not only a superuser) can create them. See notes/postgres.md, "Migrations".

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXTENSIONS = ("citext", "pg_trgm")


def upgrade() -> None:
    for name in EXTENSIONS:
        op.execute(f"CREATE EXTENSION IF NOT EXISTS {name}")


def downgrade() -> None:
    for name in reversed(EXTENSIONS):
        op.execute(f"DROP EXTENSION IF EXISTS {name}")
