"""inbox: an index on applied_at, so the worker prunes the oldest rows without reading the table.

Why: the inbox grows by one row per message and consumer; the worker deletes rows older than
``inbox_retention_s`` in batches, oldest first (app/worker/inbox.py). Without the index every batch would scan the
whole table to find its oldest rows. Built ``CONCURRENTLY`` (outside the migration's transaction), so a large inbox
keeps taking inserts while it builds. See notes/rabbitmq.md, "Pruning the inbox".

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index("ix_inbox_applied_at", "inbox", ["applied_at"], postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_inbox_applied_at", table_name="inbox", postgresql_concurrently=True)
