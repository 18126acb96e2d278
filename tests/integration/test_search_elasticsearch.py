"""The Elasticsearch adapter against a real server, run through testcontainers where a Docker engine answers: the
analyzers fold and make prefixes, a reindex moves the alias to a new generation and drops the old, external
versions keep the newer of two updates delivered in reverse order, ``search_after`` walks every hit once, and the
product's query finds what PostgreSQL finds (accents, a typo, a prefix, an exclusion).

Where no Docker engine answers (these machines), the whole module is skipped and the reason is printed in the test
summary; the same rules are proved here without a server in tests/unit/test_search_rules.py, and the PostgreSQL
path for real in tests/integration/test_search_api.py. The image is the compose file's, so both run one version.
See notes/elasticsearch.md, "Prove it".
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from elasticsearch import AsyncElasticsearch

from app.domain.search_query import parse_query
from app.search.es_index import ALIAS, EventDocument
from app.search.es_search import ElasticsearchEvents, WriteOutcome
from app.search.page import SearchRequest
from app.search.reindex import install_template, live_index, reindex
from stack.docker_provider import docker_engine_available

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def compose_image() -> str:
    image: str = yaml.safe_load(COMPOSE.read_text())["services"]["elasticsearch"]["image"]
    return image


@pytest.fixture(scope="module")
def elasticsearch_url() -> Iterator[str]:
    if not docker_engine_available():
        pytest.skip("no Docker engine answers here: Elasticsearch runs only in a container (testcontainers)")
    from testcontainers.community.elasticsearch import ElasticSearchContainer

    with ElasticSearchContainer(compose_image(), mem_limit="2G").with_env("ES_JAVA_OPTS", "-Xms512m -Xmx512m") as es:
        yield f"http://{es.get_container_host_ip()}:{es.get_exposed_port(es.port)}"


@pytest.fixture
async def client(elasticsearch_url: str) -> AsyncIterator[AsyncElasticsearch]:
    made = AsyncElasticsearch(elasticsearch_url, request_timeout=30)
    try:
        existing: Any = await made.indices.get(index="events_v*", allow_no_indices=True)
        for name in existing.body:  # by name: wildcard deletes are refused (action.destructive_requires_name)
            await made.indices.delete(index=name)
        yield made
    finally:
        await made.close()


def document(title: str, city: str, *, version: int = 1, event_id: uuid.UUID | None = None) -> EventDocument:
    return EventDocument(
        event_id=event_id or uuid.uuid4(),
        organizer_id=uuid.uuid4(),
        title=title,
        city=city,
        venue="Hall",
        starts_at=datetime(2027, 6, 1, 20, tzinfo=UTC),
        price_cents=4500,
        version=version,
    )


async def each(documents: Iterable[EventDocument]) -> AsyncIterator[EventDocument]:
    for one in documents:
        yield one


async def no_changes(_since: datetime) -> AsyncIterator[tuple[EventDocument, str]]:
    changes: list[tuple[EventDocument, str]] = []
    for change in changes:
        yield change


async def loaded(client: AsyncElasticsearch, documents: list[EventDocument]) -> ElasticsearchEvents:
    await reindex(client, each(documents), no_changes, datetime.now(UTC))
    await client.indices.refresh(index=ALIAS)
    return ElasticsearchEvents(client)


async def titles(events: ElasticsearchEvents, q: str) -> list[str]:
    return [hit.title for hit in await events.search(SearchRequest(parse_query(q), fetch=50))]


async def test_the_analyzers_fold_accents_and_index_prefixes(client: AsyncElasticsearch) -> None:
    await install_template(client)
    await client.indices.create(index="events_v1")
    folded: Any = await client.indices.analyze(index="events_v1", analyzer="folded", text="Zürich Kraków")
    assert [token["token"] for token in folded["tokens"]] == ["zurich", "krakow"]
    prefixes: Any = await client.indices.analyze(index="events_v1", analyzer="folded_prefix", text="Berlin")
    assert [token["token"] for token in prefixes["tokens"]][:3] == ["be", "ber", "berl"]


async def test_a_reindex_moves_the_alias_and_drops_the_old_generation(client: AsyncElasticsearch) -> None:
    first = await reindex(client, each([document("Fado Night", "Lisbon")]), no_changes, datetime.now(UTC))
    assert (first.old_index, first.new_index, first.loaded) == (None, "events_v1", 1)
    second = await reindex(client, each([document("Fado Night", "Lisbon")] * 2), no_changes, datetime.now(UTC))
    assert (second.old_index, second.new_index, second.loaded) == ("events_v1", "events_v2", 2)
    assert await live_index(client) == "events_v2"
    assert not await client.indices.exists(index="events_v1")


async def test_two_updates_in_reverse_order_leave_the_newer_one(client: AsyncElasticsearch) -> None:
    event_id = uuid.uuid4()
    events = await loaded(client, [document("Chopin", "Warsaw", version=1, event_id=event_id)])
    newer = document("Chopin Recital II", "Warsaw", version=3, event_id=event_id)
    older = document("Chopin Recital", "Warsaw", version=2, event_id=event_id)
    assert [await events.put(newer), await events.put(older), await events.put(newer)] == [
        WriteOutcome.APPLIED,
        WriteOutcome.STALE,
        WriteOutcome.STALE,
    ]
    stored: Any = await client.get(index=ALIAS, id=str(event_id))
    assert (stored["_version"], stored["_source"]["title"]) == (3, "Chopin Recital II")
    assert await events.remove(event_id, 2) == WriteOutcome.STALE
    assert await events.remove(event_id, 4) == WriteOutcome.APPLIED


async def test_search_after_walks_every_hit_exactly_once(client: AsyncElasticsearch) -> None:
    events = await loaded(client, [document(f"Quartet night {n}", "Porto") for n in range(25)])
    seen: list[uuid.UUID] = []
    after = None
    while True:
        hits = await events.search(SearchRequest(parse_query("quartet"), after=after, fetch=10))
        seen += [hit.id for hit in hits]
        if len(hits) < 10:
            break
        after = (hits[-1].score, hits[-1].id)
    assert (len(seen), len(set(seen))) == (25, 25)


async def test_the_product_query_finds_what_a_person_types(client: AsyncElasticsearch) -> None:
    events = await loaded(
        client,
        [document("Brahms Recital", "Zürich"), document("Fado Night", "Lisbon"), document("Flash Sale Live", "Berlin")],
    )
    assert await titles(events, "Zurich") == ["Brahms Recital"]
    assert await titles(events, "Brams") == ["Brahms Recital"]
    assert await titles(events, "Ber") == ["Flash Sale Live"]
    assert await titles(events, '"fado night" -berlin') == ["Fado Night"]
    assert await titles(events, "fado -lisbon") == []
