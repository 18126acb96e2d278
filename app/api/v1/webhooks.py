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

from app.api.deps import Organizer, StateDep, UowDep
from app.api.problems import Problem
from app.api.v1.schemas import WebhookDelivery, WebhookIn, WebhookOut
from app.notifications.webhook_sender import DeliveryFailed
from app.security.outbound_urls import UrlRefused
from app.services.webhooks import (
    WebhookNotFoundError,
    WebhookRecord,
    get_webhook,
    ping_webhook,
    remove_webhook,
    set_webhook,
)


def webhook_not_found(event_id: uuid.UUID) -> Problem:
    return Problem(404, kind="not-found", detail=f"You have no event with id {event_id}, or it has no webhook.")


def url_refused(reason: str) -> Problem:
    return Problem(
        422,
        kind="url-refused",
        detail=f"This URL cannot be used as a webhook: {reason}.",
        extensions={"errors": [{"loc": ["body", "url"], "msg": reason, "type": "url_refused"}]},
    )


def _represent(record: WebhookRecord) -> WebhookOut:
    return WebhookOut(event_id=record.event_id, url=record.url, updated_at=record.updated_at)


def build_webhooks_router() -> APIRouter:
    router = APIRouter(tags=["webhooks"])

    @router.put("/events/{event_id}/webhook", response_model=WebhookOut)
    async def put(
        event_id: uuid.UUID, body: WebhookIn, organizer: Organizer, uow: UowDep, state: StateDep
    ) -> WebhookOut:
        try:
            record = await set_webhook(
                uow, state["webhooks"], organizer_id=organizer.user_id, event_id=event_id, url=body.url
            )
        except UrlRefused as refused:
            raise url_refused(refused.reason) from None
        except WebhookNotFoundError:
            raise webhook_not_found(event_id) from None
        return _represent(record)

    @router.get("/events/{event_id}/webhook", response_model=WebhookOut)
    async def read(event_id: uuid.UUID, organizer: Organizer, uow: UowDep) -> WebhookOut:
        try:
            return _represent(await get_webhook(uow, organizer_id=organizer.user_id, event_id=event_id))
        except WebhookNotFoundError:
            raise webhook_not_found(event_id) from None

    @router.delete("/events/{event_id}/webhook", status_code=204)
    async def remove(event_id: uuid.UUID, organizer: Organizer, uow: UowDep) -> Response:
        try:
            await remove_webhook(uow, organizer_id=organizer.user_id, event_id=event_id)
        except WebhookNotFoundError:
            raise webhook_not_found(event_id) from None
        return Response(status_code=204)

    @router.post("/events/{event_id}/webhook/ping", response_model=WebhookDelivery)
    async def ping(event_id: uuid.UUID, organizer: Organizer, uow: UowDep, state: StateDep) -> WebhookDelivery:
        try:
            delivery = await ping_webhook(uow, state["webhooks"], organizer_id=organizer.user_id, event_id=event_id)
        except WebhookNotFoundError:
            raise webhook_not_found(event_id) from None
        except (UrlRefused, DeliveryFailed) as failed:
            raise Problem(
                502, kind="webhook-delivery-failed", detail=f"The webhook was not delivered: {failed.reason}."
            ) from None
        return WebhookDelivery(status=delivery.status, redirects=delivery.redirects)

    return router
