"""hold payment attempt: the provider idempotency key and when the latest payment attempt started.

What reconciling a ``paying`` hold needs and nothing secret: the key the charge was sent under (it embeds a hash of
the card token, never the token) and the instant the attempt began, so the reconciler asks the provider only once
every attempt's deadline has long passed. Both are null outside a payment attempt (and on ``paying`` holds from
before this revision, which the reconciler cannot look up and leaves to the user's retry). A partial index keeps the
reconciler's scan to the ``paying`` holds, ordered by age, like the sweeper's index on active holds. See
notes/fault_tolerance.md, "Reconciling unknown outcomes".

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("hold", sa.Column("payment_key", sa.String(length=255), nullable=True))
    op.add_column("hold", sa.Column("paying_since", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_hold_paying_since", "hold", ["paying_since"], unique=False, postgresql_where=sa.text("status = 'paying'")
    )


def downgrade() -> None:
    op.drop_index("ix_hold_paying_since", table_name="hold", postgresql_where=sa.text("status = 'paying'"))
    op.drop_column("hold", "paying_since")
    op.drop_column("hold", "payment_key")
