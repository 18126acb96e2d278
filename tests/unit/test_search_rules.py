"""The search rules that need no server: how typed text is read, the Elasticsearch query and index definition built
from it, and the indexer's decisions, with Elasticsearch's external versioning played by a named fake.

The fake (``FakeVersionedIndex``) keeps what Elasticsearch keeps per document with ``version_type=external``: the
stored version, refusing a write whose version is not higher (a 409, which the adapter turns into ``STALE``). The
live rule is proved against a real server in tests/integration/test_search_elasticsearch.py where Docker answers.
See notes/elasticsearch.md.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from app.domain.search_query import MAX_TERMS, SearchQuery, parse_query
from app.messaging.envelope import Envelope
from app.search.es_index import TEMPLATE_BODY, EventDocument, generation_of, index_name
from app.search.es_queries import search_body
from app.search.es_search import WriteOutcome
from app.search.page import SearchRequest
from app.services.search_indexer import SearchIndexer


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("Berlin jazz", SearchQuery(words=("Berlin", "jazz"))),
        ('"fado night" Lisbon', SearchQuery(words=("Lisbon",), phrases=(("fado", "night"),))),
        ("jazz -Berlin", SearchQuery(words=("jazz",), excluded=(("Berlin",),))),
        ('chopin -"piano night"', SearchQuery(words=("chopin",), excluded=(("piano", "night"),))),
        ('"unclosed phrase', SearchQuery(phrases=(("unclosed", "phrase"),))),
        ('"one"', SearchQuery(words=("one",))),
        ("Zürich!!! rock-pop", SearchQuery(words=("Zürich", "rock", "pop"))),
        ("rock or jazz", SearchQuery(words=("rock", "jazz"))),
        ("!!! ??? -", SearchQuery()),
        ("-jazz", SearchQuery(excluded=(("jazz",),))),
        ('"" -"" under_score', SearchQuery(words=("under", "score"))),
    ],
)
def test_typed_text_is_read_into_words_phrases_and_exclusions(typed: str, read: SearchQuery) -> None:
    assert parse_query(typed) == read


def test_nothing_to_look_for_is_an_empty_search_not_an_error() -> None:
    assert not parse_query("!!!").looks_for_something
    assert not parse_query("-jazz -rock").looks_for_something
    assert parse_query('"x').looks_for_something


def test_what_reaches_an_engine_is_only_letters_digits_quotes_and_spaces() -> None:
    query = parse_query('a&b | c:* "d\\" e (f) -g! -"h i" \'j\'')
    assert query.websearch() == "a b c d e f j"
    assert query.websearch_excluded() == 'g or "h i"'
    assert query.all_words() == "a b c d e f j"


def test_a_long_paste_is_cut_at_the_term_limit() -> None:
    query = parse_query(" ".join(f"w{n}" for n in range(500)))
    assert len(query.words) == MAX_TERMS


def test_the_elasticsearch_query_mirrors_the_reading() -> None:
    after_id = uuid.uuid4()
    request = SearchRequest(
        query=parse_query('Ber "fado night" -jazz'),
        city="Lisbon",
        starts_after=datetime(2027, 1, 1, tzinfo=UTC),
        after=(1.5, after_id),
        fetch=21,
    )
    body = search_body(request)
    must = body["query"]["bool"]["must"]
    [word, phrase] = must
    fuzzy, prefix = word["bool"]["should"]
    assert fuzzy["multi_match"] == {
        "query": "Ber",
        "fields": ["title^3", "venue^2", "city"],
        "fuzziness": "AUTO",
        "prefix_length": 1,
    }
    assert prefix["multi_match"]["fields"] == ["title.prefix^1.5", "venue.prefix", "city.prefix^0.5"]
    assert phrase["multi_match"]["type"] == "phrase"
    assert phrase["multi_match"]["query"] == "fado night"
    assert body["query"]["bool"]["must_not"][0]["multi_match"]["query"] == "jazz"
    assert body["query"]["bool"]["filter"] == [
        {"term": {"city.raw": "Lisbon"}},
        {"range": {"starts_at": {"gte": "2027-01-01T00:00:00+00:00"}}},
    ]
    assert body["sort"] == [{"_score": "desc"}, {"event_id": "desc"}]
    assert body["search_after"] == [1.5, str(after_id)]
    assert body["size"] == 21


def test_the_index_template_is_strict_folded_and_has_prefixes_and_keywords() -> None:
    template = TEMPLATE_BODY["template"]
    analyzers = template["settings"]["analysis"]["analyzer"]
    assert analyzers["folded"]["filter"] == ["lowercase", "asciifolding"]
    assert analyzers["folded_prefix"]["filter"][-1] == "edge_prefix"
    mappings = template["mappings"]
    assert mappings["dynamic"] == "strict"
    title = mappings["properties"]["title"]
    assert (title["analyzer"], title["fields"]["prefix"]["search_analyzer"]) == ("folded", "folded")
    assert mappings["properties"]["city"]["fields"]["raw"] == {"type": "keyword"}
    assert mappings["properties"]["event_id"] == {"type": "keyword"}
    assert TEMPLATE_BODY["index_patterns"] == ["events_v*"]
    assert [generation_of(index_name(n)) for n in (1, 2, 10)] == [1, 2, 10]
    assert generation_of("events") == 0


class FakeVersionedIndex:
    """A fake of the events index with Elasticsearch's external versioning: a write lands only with a higher
    version than the stored one (a deleted document keeps its version, as within ``index.gc_deletes``)."""

    def __init__(self) -> None:
        self.documents: dict[uuid.UUID, EventDocument] = {}
        self.versions: dict[uuid.UUID, int] = {}

    async def put(self, document: EventDocument) -> WriteOutcome:
        if self.versions.get(document.event_id, 0) >= document.version:
            return WriteOutcome.STALE
        self.versions[document.event_id] = document.version
        self.documents[document.event_id] = document
        return WriteOutcome.APPLIED

    async def remove(self, event_id: uuid.UUID, version: int) -> WriteOutcome:
        if event_id not in self.versions:
            self.versions[event_id] = version
            return WriteOutcome.ABSENT
        if self.versions[event_id] >= version:
            return WriteOutcome.STALE
        self.versions[event_id] = version
        self.documents.pop(event_id, None)
        return WriteOutcome.APPLIED


def message(kind: str, event_id: uuid.UUID, version: int, title: str, status: str = "scheduled") -> Envelope:
    payload: dict[str, Any] = {
        "event_id": str(event_id),
        "organizer_id": str(uuid.uuid4()),
        "title": title,
        "city": "Zürich",
        "venue": "Tonhalle",
        "starts_at": "2027-06-01T20:00:00+00:00",
        "price_cents": 4500,
        "version": version,
        "status": status,
    }
    return Envelope(
        id=uuid.uuid4(),
        type=kind,
        version=1,
        occurred_at=datetime.now(UTC),
        aggregate_type="event",
        aggregate_id=event_id,
        request_id=None,
        traceparent=None,
        payload=payload,
    )


async def test_two_updates_in_reverse_order_leave_the_newer_one() -> None:
    index = FakeVersionedIndex()
    indexer = SearchIndexer(index)
    event_id = uuid.uuid4()
    created, renamed, renamed_again = (
        message("event.created", event_id, 1, "Chopin"),
        message("event.updated", event_id, 2, "Chopin Recital"),
        message("event.updated", event_id, 3, "Chopin Recital II"),
    )
    outcomes = [await indexer.index(m) for m in (created, renamed_again, renamed, renamed_again)]
    assert outcomes == [WriteOutcome.APPLIED, WriteOutcome.APPLIED, WriteOutcome.STALE, WriteOutcome.STALE]
    assert index.documents[event_id].title == "Chopin Recital II"
    assert index.versions[event_id] == 3


async def test_a_cancellation_deletes_and_an_older_update_cannot_bring_it_back() -> None:
    index = FakeVersionedIndex()
    indexer = SearchIndexer(index)
    event_id = uuid.uuid4()
    await indexer.index(message("event.created", event_id, 1, "Fado Night"))
    cancelled = message("event.cancelled", event_id, 2, "Fado Night", status="cancelled")
    assert await indexer.index(cancelled) == WriteOutcome.APPLIED
    assert await indexer.index(message("event.updated", event_id, 1, "Fado Night")) == WriteOutcome.STALE
    assert event_id not in index.documents
    assert await indexer.index(cancelled) == WriteOutcome.STALE  # redelivered: nothing left to do


async def test_without_elasticsearch_the_indexer_has_nothing_to_do() -> None:
    indexer = SearchIndexer(None)
    assert indexer.queue == "search-indexer"
    assert indexer.routing_keys == ("event.#",)
    assert await indexer.index(message("event.created", uuid.uuid4(), 1, "x")) is None
