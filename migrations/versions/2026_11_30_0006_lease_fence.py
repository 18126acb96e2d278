"""lease fence: the newest fencing token PostgreSQL has seen for each Redis lease (one row per singleton job).

Why a table in the database and not only the counter in Redis: the token is checked where the writes land. Each
write transaction of a leased job first moves its lease's row to its own token, and only if that token is not
older than the row's; a holder that paused past its lease (and was replaced by a newer holder who wrote) finds its
token refused and its transaction rolled back. Redis keeps no data across a restart, so the row is also the floor a
new holder's token is raised above. See notes/redis.md, "A lease with fencing tokens".

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lease_fence",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_lease_fence")),
    )


def downgrade() -> None:
    op.drop_table("lease_fence")
