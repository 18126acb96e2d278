"""Events as index documents, read from PostgreSQL: what a reindex loads, and what its catch-up pass re-sends.

Why a server-side cursor (``stream``): a reindex reads every event, and 100k rows fetched at once would sit in
memory; streamed, they go to the bulk API in chunks as they come. Why ``changed_since``: writes that land while a
reindex runs go through the alias to the old index; after the alias moves, every event changed since the reindex
began is sent again (cancelled ones as deletes), and external versions make the repeats harmless.
See notes/elasticsearch.md, "Zero-downtime reindex".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.models import Event
from app.search.es_index import EventDocument

COLUMNS = (
    Event.id,
    Event.organizer_id,
    Event.title,
    Event.city,
    Event.venue,
    Event.starts_at,
    Event.price_cents,
    Event.version,
    Event.status,
)


def _document(row: Row[*tuple[Any, ...]]) -> EventDocument:
    return EventDocument(
        event_id=row.id,
        organizer_id=row.organizer_id,
        title=row.title,
        city=row.city,
        venue=row.venue,
        starts_at=row.starts_at,
        price_cents=row.price_cents,
        version=row.version,
    )


async def _stream(engine: AsyncEngine, where: ColumnElement[bool]) -> AsyncIterator[tuple[EventDocument, str]]:
    async with engine.connect() as conn:
        result = await conn.stream(select(*COLUMNS).where(where).execution_options(yield_per=1000))
        async for row in result:
            yield _document(row), row.status


async def scheduled_documents(engine: AsyncEngine) -> AsyncIterator[EventDocument]:
    """Every scheduled event (cancelled ones are not in the index)."""
    async for document, _status in _stream(engine, Event.status == "scheduled"):
        yield document


async def changed_since(engine: AsyncEngine, moment: datetime) -> AsyncIterator[tuple[EventDocument, str]]:
    """Every event created or changed at or after ``moment``, with its status."""
    async for pair in _stream(engine, Event.updated_at >= moment):
        yield pair
