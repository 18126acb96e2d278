"""``GET /api/v1/me/notifications``: what the caller has been told, newest first, each message once.

Why a read-only route over rows the worker writes: notifications are produced asynchronously from domain messages
(app/services/notifications.py), so this page shows them as soon as the worker has applied them — usually within
milliseconds of the change, later while the worker or the broker is down, never twice. Keyset-paged like every list
(app/api/pagination.py), routed to a replica like ``/me/bookings``. See notes/rabbitmq.md, "What users receive".
"""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import TypeAdapter

from app.api.deps import CurrentUser, ReadsDep
from app.api.pagination import CursorQuery, LimitQuery, Page, cut_page, decode_cursor
from app.api.v1.schemas import NotificationOut
from app.services.notifications import NotificationRecord, list_notifications

NotificationKey = tuple[datetime, uuid.UUID]
NOTIFICATION_KEY: TypeAdapter[NotificationKey] = TypeAdapter(NotificationKey)


def _represent(record: NotificationRecord) -> NotificationOut:
    return NotificationOut(
        id=record.id,
        kind=record.kind,
        text=record.text,
        event_id=record.event_id,
        booking_id=record.booking_id,
        created_at=record.created_at,
    )


def build_notifications_router() -> APIRouter:
    api = APIRouter(tags=["notifications"])

    @api.get("/me/notifications", response_model=Page[NotificationOut])
    async def mine(
        user: CurrentUser, reads: ReadsDep, limit: LimitQuery = 20, cursor: CursorQuery = None
    ) -> Page[NotificationOut]:
        before = decode_cursor(cursor, NOTIFICATION_KEY) if cursor else None
        rows = await reads.run(
            lambda uows: list_notifications(uows, user_id=user.user_id, before=before, fetch=limit + 1)
        )
        items, next_cursor = cut_page(rows, limit, lambda r: (r.created_at, r.id), NOTIFICATION_KEY)
        return Page[NotificationOut](items=[_represent(r) for r in items], next_cursor=next_cursor)

    return api
