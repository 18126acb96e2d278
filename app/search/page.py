"""The search request both backends answer and the hits they return, so the use case can swap one for the other.

Why the key carries the backend: a relevance score means something only to the engine that computed it (BM25 in
Elasticsearch, ``ts_rank_cd`` plus trigram similarity in PostgreSQL), so a keyset cursor ``(score, id)`` from one
engine would skip or repeat rows on the other. The cursor names its engine, and the next page goes to the same one.
See notes/elasticsearch.md, "Deep paging".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from app.domain.search_query import SearchQuery

Backend = Literal["elasticsearch", "postgres"]
SearchKey = tuple[Backend, float, uuid.UUID]
"""``(backend, score, id)``: pages are ordered by score descending, then id descending (a total order)."""


@dataclass(frozen=True)
class SearchRequest:
    query: SearchQuery
    city: str | None = None
    starts_after: datetime | None = None
    starts_before: datetime | None = None
    after: tuple[float, uuid.UUID] | None = None
    fetch: int = 21


@dataclass(frozen=True)
class SearchHit:
    id: uuid.UUID
    title: str
    city: str
    venue: str
    starts_at: datetime
    price_cents: int
    score: float


@dataclass(frozen=True)
class SearchResult:
    """Up to ``fetch`` hits in page order, and the backend that found them."""

    hits: list[SearchHit]
    backend: Backend

    def key_of(self, hit: SearchHit) -> SearchKey:
        return self.backend, hit.score, hit.id
