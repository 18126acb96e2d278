"""The search request as an Elasticsearch query body: pure, so its shape is unit-tested without a server.

Why this shape: every word is a ``bool`` of two ``multi_match`` clauses, one fuzzy (``AUTO`` edits, first letter
exact) on the folded fields and one on the edge n-gram ``.prefix`` fields, and the word must match one of them;
phrases are ``multi_match`` of type ``phrase``; exclusions are ``must_not`` phrases; filters (city, dates) go in
``filter`` context, which is cached and never scored. Field boosts mirror the PostgreSQL weights (title 3, venue 2,
city 1; the prefix fields half of that), and BM25 does the rest. Sorting by ``_score`` then ``event_id`` gives a
total order that ``search_after`` resumes from, without the cost of ``from``/``size`` at depth.
See notes/elasticsearch.md, "One query, two engines" and "Deep paging".
"""

from __future__ import annotations

from typing import Any

from app.domain.search_query import Phrase
from app.search.page import SearchRequest

FIELDS = ["title^3", "venue^2", "city"]
PREFIX_FIELDS = ["title.prefix^1.5", "venue.prefix", "city.prefix^0.5"]


def _word(word: str) -> dict[str, Any]:
    fuzzy = {"multi_match": {"query": word, "fields": FIELDS, "fuzziness": "AUTO", "prefix_length": 1}}
    prefix = {"multi_match": {"query": word, "fields": PREFIX_FIELDS}}
    return {"bool": {"should": [fuzzy, prefix], "minimum_should_match": 1}}


def _phrase(phrase: Phrase) -> dict[str, Any]:
    return {"multi_match": {"query": " ".join(phrase), "type": "phrase", "fields": FIELDS}}


def _filters(request: SearchRequest) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = []
    if request.city is not None:
        filters.append({"term": {"city.raw": request.city}})
    window = {}
    if request.starts_after is not None:
        window["gte"] = request.starts_after.isoformat()
    if request.starts_before is not None:
        window["lt"] = request.starts_before.isoformat()
    if window:
        filters.append({"range": {"starts_at": window}})
    return filters


def search_body(request: SearchRequest) -> dict[str, Any]:
    """Keyword arguments for ``AsyncElasticsearch.search`` (besides ``index``)."""
    query = request.query
    body: dict[str, Any] = {
        "query": {
            "bool": {
                "must": [*(_word(word) for word in query.words), *(_phrase(phrase) for phrase in query.phrases)],
                "must_not": [_phrase(phrase) for phrase in query.excluded],
                "filter": _filters(request),
            }
        },
        "sort": [{"_score": "desc"}, {"event_id": "desc"}],
        "size": request.fetch,
        "track_total_hits": False,
        "_source": ["event_id", "title", "city", "venue", "starts_at", "price_cents"],
    }
    if request.after is not None:
        score, event_id = request.after
        body["search_after"] = [score, str(event_id)]
    return body
