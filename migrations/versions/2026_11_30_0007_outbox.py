"""outbox: the messages a change owes the broker, written in the change's own transaction; and event.status.

Why a table and not a publish after the commit: a process that dies between its commit and its publish loses the
message, and a publish before the commit announces a change that may yet roll back. A row inserted in the same
transaction as the change exists exactly when the change does; the relay (app/messaging/outbox_relay.py) publishes
it later, at least once. ``id`` is an identity: the order rows were written in, which the relay keeps per
aggregate. ``partition`` (the aggregate id modulo a fixed count) is the unit one relay at a time publishes, under
a transaction-scoped advisory lock. The partial index serves exactly the relay's question (the unpublished rows of
one partition, oldest first) and shrinks back as rows are published. A statement-level trigger sends
``NOTIFY outbox`` from the writing transaction, delivered only if it commits, so a listening relay wakes within
milliseconds instead of a poll interval. ``returned_at`` and ``attempts`` keep the trace of a message the broker
returned as unroutable: the row stays unpublished, never silently dropped.

``event.status``: an event is cancelled (``PATCH`` with ``status: cancelled``) rather than deleted, so its
bookings keep their event and consumers learn it from ``event.cancelled``. See notes/rabbitmq.md, "The outbox
and its relay".

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("event", sa.Column("status", sa.String(length=16), server_default="scheduled", nullable=False))
    op.create_check_constraint(op.f("ck_event_status"), "event", "status in ('scheduled', 'cancelled')")
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("message_id", postgresql.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("version", sa.SmallInteger(), nullable=False),
        sa.Column("aggregate_type", sa.String(length=32), nullable=False),
        sa.Column("aggregate_id", postgresql.UUID(), nullable=False),
        sa.Column("partition", sa.SmallInteger(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("traceparent", sa.String(length=55), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["partition", "id"], postgresql_where=sa.text("published_at IS NULL")
    )
    op.create_index(
        "ix_outbox_published_at", "outbox", ["published_at"], postgresql_where=sa.text("published_at IS NOT NULL")
    )
    op.execute(
        "CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_notify('outbox', ''); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION outbox_notify()")
    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.drop_table("outbox")
    op.drop_constraint(op.f("ck_event_status"), "event", type_="check")
    op.drop_column("event", "status")
