"""``ElasticsearchEvents``: the events index through the official async client: search, versioned writes, bulk.

Why external versioning: messages about one event may arrive out of order (a retry tier delays one, a redelivery
repeats another). Every write carries the event row's ``version`` with ``version_type=external``, and
Elasticsearch applies it only if it is higher than the stored one; an older or repeated write is refused with a 409,
which here is the expected outcome ``STALE``, not an error. So applying a message twice, or an old one after a new
one, leaves the newest event in the index. A delete is versioned the same way (Elasticsearch keeps a deleted
document's version for ``index.gc_deletes``, 60 s, so an update older than the delete that arrives within that
window is refused too; later, the inbox has long deduplicated it). Why no client retries
(``max_retries=0``): the search path has a budget and a fallback, and the indexer has the worker's retry tiers.
Why the client is imported only when ``elasticsearch_url`` is set: importing it costs about 2 s of CPU (every API
namespace is loaded), paid at every start of every app worker, which need none of it while PostgreSQL searches.
See notes/elasticsearch.md, "Keeping the index in step".
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.search.es_index import ALIAS, EventDocument
from app.search.es_queries import search_body
from app.search.page import SearchHit, SearchRequest
from app.settings import Settings

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch  # here, not at the top: see the module docstring


class WriteOutcome(enum.Enum):
    APPLIED = "applied"
    STALE = "stale"  # the index already holds this version or a newer one
    ABSENT = "absent"  # a delete of a document the index never had


def open_elasticsearch(settings: Settings) -> AsyncElasticsearch | None:
    """One pooled client per process, or None when ``elasticsearch_url`` is unset (search is PostgreSQL's)."""
    if settings.elasticsearch_url is None:
        return None
    from elasticsearch import AsyncElasticsearch  # here, not at the top: see the module docstring

    return AsyncElasticsearch(
        str(settings.elasticsearch_url), request_timeout=settings.elasticsearch_timeout_s, max_retries=0
    )


def open_events_index(settings: Settings) -> ElasticsearchEvents | None:
    """The events alias through a new client (close it with ``client.close()``), or None without Elasticsearch."""
    client = open_elasticsearch(settings)
    return ElasticsearchEvents(client) if client is not None else None


class ElasticsearchEvents:
    """The events alias: ``search`` for the API, ``put``/``remove`` for the indexer, ``bulk_put`` for a reindex."""

    def __init__(self, client: AsyncElasticsearch, index: str = ALIAS) -> None:
        self.client = client
        self.index = index

    async def search(self, request: SearchRequest) -> list[SearchHit]:
        if not request.query.looks_for_something:
            return []
        answer = await self.client.search(index=self.index, **search_body(request))
        return [_hit(hit) for hit in answer["hits"]["hits"]]

    async def put(self, document: EventDocument) -> WriteOutcome:
        from elasticsearch import ConflictError

        try:
            await self.client.index(
                index=self.index,
                id=str(document.event_id),
                document=document.source(),
                version=document.version,
                version_type="external",
            )
        except ConflictError:
            return WriteOutcome.STALE
        return WriteOutcome.APPLIED

    async def remove(self, event_id: uuid.UUID, version: int) -> WriteOutcome:
        from elasticsearch import ConflictError, NotFoundError

        try:
            await self.client.delete(index=self.index, id=str(event_id), version=version, version_type="external")
        except ConflictError:
            return WriteOutcome.STALE
        except NotFoundError:
            return WriteOutcome.ABSENT
        return WriteOutcome.APPLIED

    async def bulk_put(self, documents: AsyncIterable[EventDocument]) -> int:
        """Index every document (external versions; a 409 is an older copy, skipped); returns how many applied."""
        from elasticsearch.helpers import async_bulk

        async def actions() -> AsyncIterable[dict[str, Any]]:
            async for document in documents:
                yield {
                    "_index": self.index,
                    "_id": str(document.event_id),
                    "_source": document.source(),
                    "version": document.version,
                    "version_type": "external",
                }

        applied, _ = await async_bulk(self.client, actions(), ignore_status=(409,), stats_only=True)
        return applied


def _hit(hit: dict[str, Any]) -> SearchHit:
    source = hit["_source"]
    return SearchHit(
        id=uuid.UUID(source["event_id"]),
        title=source["title"],
        city=source["city"],
        venue=source["venue"],
        starts_at=datetime.fromisoformat(source["starts_at"]),
        price_cents=source["price_cents"],
        score=float(hit["sort"][0]),
    )
