"""worker tables: the inbox (what each consumer has applied), buyers' notifications, webhook delivery attempts, and
the salt each event webhook's signing secret is derived from.

Why the inbox is keyed by (consumer, message id): the same message reaches several consumers and each applies it
once; the row is written in the transaction of the effect, so "applied" and "recorded as applied" commit or roll
back together and a redelivered copy finds the row. Why a salt and not the secret: the secret is
HMAC(server webhook key, salt), so a copy of this table alone cannot sign a webhook (app/security/webhook_signing.py).
See notes/rabbitmq.md, "The worker and its inbox", and notes/security.md.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("event_webhook", sa.Column("signing_salt", sa.LargeBinary(), nullable=True))
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("message_id", postgresql.UUID(), nullable=False),
        sa.Column("message_type", sa.String(length=64), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name=op.f("pk_inbox")),
    )
    op.create_table(
        "notification",
        sa.Column("id", postgresql.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", postgresql.UUID(), nullable=False),
        sa.Column("message_id", postgresql.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("event_id", postgresql.UUID(), nullable=False),
        sa.Column("booking_id", postgresql.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "kind in ('booking-confirmed', 'hold-expired', 'payment-settled')", name=op.f("ck_notification_kind")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_notification_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
        sa.UniqueConstraint("message_id", name=op.f("uq_notification_message_id")),
    )
    op.create_index("ix_notification_user_id_created_at_id", "notification", ["user_id", "created_at", "id"])
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", postgresql.UUID(), nullable=False),
        sa.Column("message_id", postgresql.UUID(), nullable=False),
        sa.Column("message_type", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.SmallInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("outcome in ('delivered', 'failed', 'parked')", name=op.f("ck_webhook_delivery_outcome")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["event.id"], name=op.f("fk_webhook_delivery_event_id_event"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
    )
    op.create_index("ix_webhook_delivery_event_id_id", "webhook_delivery", ["event_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_delivery_event_id_id", table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
    op.drop_index("ix_notification_user_id_created_at_id", table_name="notification")
    op.drop_table("notification")
    op.drop_table("inbox")
    op.drop_column("event_webhook", "signing_salt")
