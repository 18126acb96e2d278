"""event webhooks: at most one notification URL per event, set by the event's organizer.

A table of its own rather than a column on ``event``: the URL is the organizer's private setting, not part of the
public representation or of its ``ETag`` version, and deleting it never touches the event row. ``event_id`` is
the primary key (one webhook per event) and cascades, so a removed event takes its webhook along. The URL is
vetted before it is stored (notes/security.md, "SSRF"); the length check is the last line if a writer forgets.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_webhook",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("length(url) <= 2048", name=op.f("ck_event_webhook_url_length")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["event.id"], name=op.f("fk_event_webhook_event_id_event"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_event_webhook")),
    )


def downgrade() -> None:
    op.drop_table("event_webhook")
