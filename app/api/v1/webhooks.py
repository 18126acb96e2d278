"""``PUT``/``GET``/``DELETE /api/v1/events/{id}/webhook`` and ``POST …/webhook/ping``: an event's notification URL.

Why these statuses: organizers only (403 for everyone else, from the ``Organizer`` dependency); another
organizer's event is 404 like a missing one, since the webhook is private (BOLA-safe, no existence leak); a URL
the outbound policy refuses is 422 ``url-refused`` with the reason (SSRF, API7); a ping that got no usable answer
is 502 ``webhook-delivery-failed`` with the reason, including a redirect towards a refused address. The routes
translate; the use cases live in app/services/webhooks.py. See notes/security.md, "SSRF".
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from pydantic import TypeAdapter

from app.api.deps import Organizer, StateDep, UowsDep
from app.api.pagination import CursorQuery, LimitQuery, Page, cut_page, decode_cursor
from app.api.problem_table import ProblemTable
from app.api.problems import Problem
from app.api.v1.schemas import WebhookDelivery, WebhookDeliveryAttemptOut, WebhookIn, WebhookOut, WebhookSet
from app.services.webhook_deliveries import DeliveryRecord, list_deliveries
from app.services.webhooks import (
    WebhookNotDeliveredError,
    WebhookNotFoundError,
    WebhookRecord,
    WebhookUrlRefusedError,
    get_webhook,
    ping_webhook,
    remove_webhook,
    set_webhook,
)


def webhook_not_found(error: WebhookNotFoundError) -> Problem:
    return Problem(404, kind="not-found", detail=f"You have no event with id {error.event_id}, or it has no webhook.")


def url_refused(refused: WebhookUrlRefusedError) -> Problem:
    return Problem(
        422,
        kind="url-refused",
        detail=f"This URL cannot be used as a webhook: {refused.reason}.",
        extensions={"errors": [{"loc": ["body", "url"], "msg": refused.reason, "type": "url_refused"}]},
    )


def delivery_failed(failed: WebhookNotDeliveredError) -> Problem:
    return Problem(502, kind="webhook-delivery-failed", detail=f"The webhook was not delivered: {failed.reason}.")


WEBHOOK_PROBLEMS = ProblemTable(
    {
        WebhookNotFoundError: webhook_not_found,
        WebhookUrlRefusedError: url_refused,
        WebhookNotDeliveredError: delivery_failed,
    }
)


def _represent(record: WebhookRecord) -> WebhookOut:
    return WebhookOut(event_id=record.event_id, url=record.url, updated_at=record.updated_at)


DELIVERY_KEY: TypeAdapter[int] = TypeAdapter(int)


def _attempt(record: DeliveryRecord) -> WebhookDeliveryAttemptOut:
    return WebhookDeliveryAttemptOut(
        id=record.id,
        message_id=record.message_id,
        type=record.message_type,
        attempt=record.attempt,
        outcome=record.outcome,
        status_code=record.status_code,
        error=record.error,
        created_at=record.created_at,
    )


def build_webhooks_router() -> APIRouter:
    api = APIRouter(tags=["webhooks"])

    @api.put("/events/{event_id}/webhook", response_model=WebhookSet)
    async def put(
        event_id: uuid.UUID, body: WebhookIn, organizer: Organizer, uows: UowsDep, state: StateDep
    ) -> WebhookSet:
        with WEBHOOK_PROBLEMS.translating():
            new = await set_webhook(
                uows,
                state["webhooks"],
                signing_key=state["settings"].webhook_signing_key,
                organizer_id=organizer.user_id,
                event_id=event_id,
                url=body.url,
            )
        return WebhookSet(**_represent(new.record).model_dump(), secret=new.secret)

    @api.get("/events/{event_id}/webhook", response_model=WebhookOut)
    async def read(event_id: uuid.UUID, organizer: Organizer, uows: UowsDep) -> WebhookOut:
        with WEBHOOK_PROBLEMS.translating():
            return _represent(await get_webhook(uows, organizer_id=organizer.user_id, event_id=event_id))

    @api.delete("/events/{event_id}/webhook", status_code=204)
    async def remove(event_id: uuid.UUID, organizer: Organizer, uows: UowsDep) -> Response:
        with WEBHOOK_PROBLEMS.translating():
            await remove_webhook(uows, organizer_id=organizer.user_id, event_id=event_id)
        return Response(status_code=204)

    @api.post("/events/{event_id}/webhook/ping", response_model=WebhookDelivery)
    async def ping(event_id: uuid.UUID, organizer: Organizer, uows: UowsDep, state: StateDep) -> WebhookDelivery:
        with WEBHOOK_PROBLEMS.translating():
            delivery = await ping_webhook(uows, state["webhooks"], organizer_id=organizer.user_id, event_id=event_id)
        return WebhookDelivery(status=delivery.status, redirects=delivery.redirects)

    @api.get("/events/{event_id}/webhook/deliveries", response_model=Page[WebhookDeliveryAttemptOut])
    async def deliveries(
        event_id: uuid.UUID, organizer: Organizer, uows: UowsDep, limit: LimitQuery = 20, cursor: CursorQuery = None
    ) -> Page[WebhookDeliveryAttemptOut]:
        """Recent delivery attempts to this event's webhook, newest first (the event's organizer only)."""
        before = decode_cursor(cursor, DELIVERY_KEY) if cursor else None
        with WEBHOOK_PROBLEMS.translating():
            rows = await list_deliveries(
                uows, organizer_id=organizer.user_id, event_id=event_id, before=before, fetch=limit + 1
            )
        items, next_cursor = cut_page(rows, limit, lambda r: r.id, DELIVERY_KEY)
        return Page[WebhookDeliveryAttemptOut](items=[_attempt(r) for r in items], next_cursor=next_cursor)

    return api
