"""``SearchIndexer``: the worker's consumer that keeps the Elasticsearch events index in step with the database.

Why from the outbox and not from the request: a request that wrote to PostgreSQL and then to Elasticsearch (dual
writes) loses the second write whenever it crashes or Elasticsearch hiccups between the two, and nothing notices.
Here the change and its ``event.*`` message commit together (the outbox), the relay delivers the message at least
once, and this consumer turns it into an index write: ``event.created``/``event.updated`` index the event as it is
now, ``event.cancelled`` deletes it. Each write carries the event row's version as an external version, so a
redelivery or a message overtaken by a newer one is refused by Elasticsearch and reported ``STALE``: idempotent,
and immune to reordering. An Elasticsearch that does not answer raises, and the worker's retry tiers try again
later. Without ``elasticsearch_url`` there is no index to keep: the database keeps its own ``tsvector``
(migration 0009) and this consumer only acknowledges. See notes/elasticsearch.md, "Keeping the index in step".
"""

from __future__ import annotations

import uuid
from typing import Protocol

from app.messaging.consumer import UnitOfWork
from app.messaging.envelope import Envelope, EventChangedV1, payload_model
from app.messaging.topology import BINDINGS
from app.search.es_index import EventDocument
from app.search.es_search import WriteOutcome

QUEUE = "search-indexer"


class EventIndex(Protocol):
    """What the indexer needs of the index (``ElasticsearchEvents`` in the product)."""

    async def put(self, document: EventDocument) -> WriteOutcome: ...

    async def remove(self, event_id: uuid.UUID, version: int) -> WriteOutcome: ...


class SearchIndexer:
    """A ``Consumer`` (app/messaging/consumer.py) of ``event.#`` on the queue ``search-indexer``."""

    queue = QUEUE
    routing_keys = BINDINGS[QUEUE]

    def __init__(self, index: EventIndex | None) -> None:
        self._index = index

    async def apply(self, message: Envelope, uow: UnitOfWork) -> None:
        """The index write; nothing goes through ``uow`` (the worker's inbox row is all the database holds)."""
        await self.index(message)

    async def index(self, message: Envelope) -> WriteOutcome | None:
        """Apply one ``event.*`` message to the index; None when there is no index to keep."""
        if self._index is None:
            return None
        event = payload_model(message.type, message.version).model_validate(message.payload)
        if not isinstance(event, EventChangedV1):
            raise TypeError(f"{message.type} is not an event message")
        if message.type == "event.cancelled" or event.status == "cancelled":
            return await self._index.remove(event.event_id, event.version)
        return await self._index.put(
            EventDocument(
                event_id=event.event_id,
                organizer_id=event.organizer_id,
                title=event.title,
                city=event.city,
                venue=event.venue,
                starts_at=event.starts_at,
                price_cents=event.price_cents,
                version=event.version,
            )
        )
