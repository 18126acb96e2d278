"""The declarative base every ORM model derives from, with one naming convention for constraints.

Why a naming convention: without it PostgreSQL invents constraint names, so Alembic cannot drop or alter them
reliably and two databases migrated differently end up with different names. With it, ``pk_seat``,
``fk_seat_event_id_event`` and ``uq_user_email`` are the same everywhere. ``migrations/env.py`` uses this metadata
as its target. See notes/postgres.md, "Migrations".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # every time is timestamptz, stored in UTC
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}
