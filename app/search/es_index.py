"""The events index in Elasticsearch: its template (explicit mappings and analyzers), its alias and its documents.

Why a template and an alias: every concrete index is ``events_v<N>`` and takes its settings and mappings from the
template ``events`` (pattern ``events_v*``), so a reindex creates ``events_v<N+1>`` with the current definition and
moves the alias ``events`` to it in one atomic ``_aliases`` call (app/search/reindex.py); readers and the indexer
only ever name the alias. Why these mappings:
- ``dynamic: strict``: a field nobody declared is refused, never added: no mapping explosion from a stray key.
- ``folded`` (standard tokenizer, lowercase, asciifolding) on title, venue and city: "Zurich" finds "Zürich".
- a ``.prefix`` subfield indexed with edge n-grams (2 to 20 characters) and searched with ``folded``: "Ber" finds
  "Berlin" from the index, with no wildcard expansion at query time.
- ``city.raw`` (keyword) for the exact city filter, ``event_id`` (keyword) as the tie-breaker of ``search_after``.
- one shard, no replica: one node here; notes/elasticsearch.md, "Shards and replicas", sizes a real cluster.
See notes/elasticsearch.md, "The index".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ALIAS = "events"
TEMPLATE = "events"
INDEX_PREFIX = "events_v"

_PREFIX_FIELD = {"prefix": {"type": "text", "analyzer": "folded_prefix", "search_analyzer": "folded"}}
_TEXT_WITH_PREFIX = {"type": "text", "analyzer": "folded", "fields": _PREFIX_FIELD}

TEMPLATE_BODY: dict[str, Any] = {
    "index_patterns": [f"{INDEX_PREFIX}*"],
    "priority": 100,
    "template": {
        "settings": {
            "number_of_shards": 1,
            "number_of_replicas": 0,
            "refresh_interval": "1s",
            "analysis": {
                "filter": {"edge_prefix": {"type": "edge_ngram", "min_gram": 2, "max_gram": 20}},
                "analyzer": {
                    "folded": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]},
                    "folded_prefix": {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": ["lowercase", "asciifolding", "edge_prefix"],
                    },
                },
            },
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "event_id": {"type": "keyword"},
                "organizer_id": {"type": "keyword", "index": False},
                "title": _TEXT_WITH_PREFIX,
                "venue": _TEXT_WITH_PREFIX,
                "city": {**_TEXT_WITH_PREFIX, "fields": {**_PREFIX_FIELD, "raw": {"type": "keyword"}}},
                "starts_at": {"type": "date"},
                "price_cents": {"type": "integer"},
                "version": {"type": "long"},
            },
        },
    },
}


def index_name(generation: int) -> str:
    return f"{INDEX_PREFIX}{generation}"


def generation_of(index: str) -> int:
    """``events_v7`` → 7 (0 for a name that is not one of ours)."""
    suffix = index.removeprefix(INDEX_PREFIX)
    return int(suffix) if index.startswith(INDEX_PREFIX) and suffix.isdigit() else 0


@dataclass(frozen=True)
class EventDocument:
    """One scheduled event as the index stores it; ``version`` is the row's version, the external version."""

    event_id: uuid.UUID
    organizer_id: uuid.UUID
    title: str
    city: str
    venue: str
    starts_at: datetime
    price_cents: int
    version: int

    def source(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "organizer_id": str(self.organizer_id),
            "title": self.title,
            "city": self.city,
            "venue": self.venue,
            "starts_at": self.starts_at.isoformat(),
            "price_cents": self.price_cents,
            "version": self.version,
        }
