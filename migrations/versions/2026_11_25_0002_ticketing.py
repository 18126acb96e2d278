"""ticketing: users, events, seats, holds, bookings and idempotency keys.

Generated from app/db/models.py and read line by line. The indexes are the access paths the API uses: the event
list walks ``(city, starts_at, id)`` (keyset pagination), the sweeper scans only active holds through a partial
index on ``expires_at``, ``/me/bookings`` walks ``(user_id, created_at, id)``. See notes/postgres.md, "Migrations".

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("email", postgresql.CITEXT(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), server_default="user", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("role in ('user', 'organizer')", name=op.f("ck_app_user_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("email", name=op.f("uq_app_user_email")),
    )
    op.create_table(
        "event",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organizer_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        sa.Column("venue", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("rows", sa.SmallInteger(), nullable=False),
        sa.Column("seats_per_row", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("price_cents >= 0", name=op.f("ck_event_price_cents")),
        sa.CheckConstraint("rows between 1 and 100 and seats_per_row between 1 and 100", name=op.f("ck_event_layout")),
        sa.ForeignKeyConstraint(["organizer_id"], ["app_user.id"], name=op.f("fk_event_organizer_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
    )
    op.create_index("ix_event_city_starts_at_id", "event", ["city", "starts_at", "id"], unique=False)
    op.create_index("ix_event_starts_at_id", "event", ["starts_at", "id"], unique=False)
    op.create_table(
        "idempotency_key",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="in_progress", nullable=False),
        sa.Column("response_status", sa.SmallInteger(), nullable=True),
        sa.Column("response_headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status in ('in_progress', 'completed')", name=op.f("ck_idempotency_key_status")),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_idempotency_key_user_id_app_user")),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotency_key")),
    )
    op.create_table(
        "hold",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status in ('active', 'paying', 'booked', 'expired', 'released')", name=op.f("ck_hold_status")
        ),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], name=op.f("fk_hold_event_id_event")),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_hold_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hold")),
    )
    op.create_index(
        "ix_hold_active_expires_at", "hold", ["expires_at"], unique=False, postgresql_where=sa.text("status = 'active'")
    )
    op.create_index("ix_hold_user_id_status", "hold", ["user_id", "status"], unique=False)
    op.create_table(
        "booking",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("hold_id", sa.UUID(), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="confirmed", nullable=False),
        sa.Column("payment_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status in ('confirmed')", name=op.f("ck_booking_status")),
        sa.CheckConstraint("amount_cents >= 0", name=op.f("ck_booking_amount_cents")),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], name=op.f("fk_booking_event_id_event")),
        sa.ForeignKeyConstraint(["hold_id"], ["hold.id"], name=op.f("fk_booking_hold_id_hold")),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_booking_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking")),
        sa.UniqueConstraint("hold_id", name=op.f("uq_booking_hold_id")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_booking_payment_id")),
    )
    op.create_index("ix_booking_user_id_created_at_id", "booking", ["user_id", "created_at", "id"], unique=False)
    op.create_table(
        "seat",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("row", sa.SmallInteger(), nullable=False),
        sa.Column("number", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="available", nullable=False),
        sa.Column("hold_id", sa.UUID(), nullable=True),
        sa.CheckConstraint("(status = 'available') = (hold_id is null)", name=op.f("ck_seat_hold_matches_status")),
        sa.CheckConstraint("status in ('available', 'held', 'sold')", name=op.f("ck_seat_status")),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], name=op.f("fk_seat_event_id_event")),
        sa.ForeignKeyConstraint(["hold_id"], ["hold.id"], name=op.f("fk_seat_hold_id_hold")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seat")),
        sa.UniqueConstraint("event_id", "row", "number", name=op.f("uq_seat_event_id_row_number")),
    )
    op.create_index("ix_seat_event_id_status", "seat", ["event_id", "status"], unique=False)
    op.create_index("ix_seat_hold_id", "seat", ["hold_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_seat_hold_id", table_name="seat")
    op.drop_index("ix_seat_event_id_status", table_name="seat")
    op.drop_table("seat")
    op.drop_index("ix_booking_user_id_created_at_id", table_name="booking")
    op.drop_table("booking")
    op.drop_index("ix_hold_user_id_status", table_name="hold")
    op.drop_index("ix_hold_active_expires_at", table_name="hold", postgresql_where=sa.text("status = 'active'"))
    op.drop_table("hold")
    op.drop_table("idempotency_key")
    op.drop_index("ix_event_starts_at_id", table_name="event")
    op.drop_index("ix_event_city_starts_at_id", table_name="event")
    op.drop_table("event")
    op.drop_table("app_user")
