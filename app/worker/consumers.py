"""The consumers the worker runs, each with its prefetch: add a consumer here and the worker consumes its queue.

Why these prefetch values (measured by ``python -m bench.prefetch``; notes/rabbitmq.md, "Prefetch, measured"): a
consumer handles its deliveries one at a time, in order, so prefetch only decides how many wait in the client while
one is handled. At 1 every message waits a broker round trip after the previous ack; a small window hides that
round trip, and beyond it the gain stops while more messages sit unacknowledged in one process (all redelivered, and
all counted toward x-delivery-limit, if it dies). Notifications are quick database writes: 4, the smallest window
that gained in every run (the note has the three runs); larger windows gained nothing consistent. A webhook delivery
waits on someone else's server for seconds: its round trip to the broker is noise beside that, and a larger window
would only strand more messages behind one slow receiver, so 1.
The search indexer writes one versioned document per message (notes/elasticsearch.md): the notifications' window.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.messaging.consumer import Consumer
from app.notifications.webhook_sender import WebhookSender
from app.services.notifications import NotificationsConsumer
from app.services.search_indexer import EventIndex, SearchIndexer
from app.services.unit_of_work import UnitOfWorkFactory
from app.services.webhook_deliveries import WebhooksConsumer
from app.settings import Settings

NOTIFICATIONS_PREFETCH = 4
WEBHOOKS_PREFETCH = 1
SEARCH_INDEXER_PREFETCH = NOTIFICATIONS_PREFETCH  # one versioned index write each, like a notification's one insert


@dataclass(frozen=True)
class Subscription:
    consumer: Consumer
    prefetch: int


def subscriptions(
    settings: Settings, uows: UnitOfWorkFactory, sender: WebhookSender, events_index: EventIndex | None
) -> list[Subscription]:
    attempts = 1 + len(settings.worker_retry_delays_s)
    webhooks = WebhooksConsumer(sender, uows, signing_key=settings.webhook_signing_key, attempts=attempts)
    return [
        Subscription(NotificationsConsumer(), prefetch=NOTIFICATIONS_PREFETCH),
        Subscription(webhooks, prefetch=WEBHOOKS_PREFETCH),
        Subscription(SearchIndexer(events_index), prefetch=SEARCH_INDEXER_PREFETCH),
    ]
