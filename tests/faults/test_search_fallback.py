"""Elasticsearch refused or deaf: PostgreSQL answers every search, the breaker opens after exactly
``search_breaker_fail_max`` failures and then spares Elasticsearch (and the request) any further attempt, and
``X-Search-Backend`` and /metrics say which engine answered and why.

Both faults are real sockets: a port nothing listens on (connection refused), and a listener of our own that
accepts every connection and never answers (the request's budget, ``elasticsearch_timeout_s``, runs out inside the
guarded call). The apps run in this process on the session stack's PostgreSQL, with no Redis: each app's breaker is
its own, so nothing but these searches moves it. See notes/elasticsearch.md, "Breaker and budget".
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.services.search import BREAKER
from app.settings import Settings
from stack.native.stack import NativeStack, asyncpg_url
from tests.api_users import ApiUser, create_event, new_user
from tests.in_process_app import Running, running

pytestmark = pytest.mark.fault
SEARCHES = 6


class DeafListener:
    """Accepts every connection on a loopback port and never reads or writes; counts what it accepted."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self._socket.close()
        self._thread.join(timeout=5)
        for connection in self.accepted:
            connection.close()


def refused_port() -> int:
    """A loopback port that was free a moment ago and has no listener now."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def deaf() -> Iterator[DeafListener]:
    listener = DeafListener()
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="module")
def performer(stack: NativeStack) -> str:
    organizer: ApiUser = new_user(stack, organizer=True, label="search-fallback")
    create_event(stack, organizer, title="Sonata by Qwertzimbel", city="Zürich")
    return "Qwertzimbel"


def app_settings(stack: NativeStack, elasticsearch_url: str) -> Settings:
    return Settings.model_validate(
        {
            "env": "test",
            "database_url": asyncpg_url(stack.primary.url),
            "replica_url": asyncpg_url(stack.replica.url),
            # no Redis: the breaker is this process's alone, so its counts cannot be disturbed by a slow exchange
            # under load (the shared circuit is proved in tests/integration/test_shared_breaker.py)
            "redis_url": f"redis://127.0.0.1:{refused_port()}/0",
            "amqp_url": stack.rabbitmq.url,
            "payments_url": stack.payments.url,
            "sweeper_enabled": False,
            "reconciler_enabled": False,
            "outbox_relay_enabled": False,
            "elasticsearch_url": elasticsearch_url,
        }
    )


async def searches(app: Running, performer: str) -> list[tuple[int, str, list[str]]]:
    answers = []
    for _ in range(SEARCHES):
        answer = await app.client.get("/api/v1/search/events", params={"q": f"Zurich {performer.lower()}"})
        titles = [item["title"] for item in answer.json()["items"]]
        answers.append((answer.status_code, answer.headers["x-search-backend"], titles))
    return answers


async def search_counts(app: Running) -> dict[str, float]:
    text = (await app.client.get("/metrics")).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "search_requests_total":
                counts[f"{sample.labels['backend']}/{sample.labels['reason']}"] = sample.value
            if sample.name == "circuit_breaker_state" and sample.labels["breaker"] == BREAKER:
                counts["breaker_state"] = sample.value
    return counts


def expected(settings: Settings) -> dict[str, Any]:
    failing = settings.search_breaker_fail_max
    return {"postgres/failed": failing, "postgres/breaker-open": SEARCHES - failing, "breaker_state": 2.0}


def test_the_production_defaults() -> None:
    settings = Settings()
    assert settings.elasticsearch_url is None
    assert (settings.elasticsearch_timeout_s, settings.search_breaker_fail_max) == (0.3, 3)
    assert settings.search_breaker_reset_s == 10.0
    assert Settings(elasticsearch_url="").elasticsearch_url is None


async def test_refused_connections_open_the_breaker_and_postgres_answers(stack: NativeStack, performer: str) -> None:
    settings = app_settings(stack, f"http://127.0.0.1:{refused_port()}")
    async with running(settings) as app:
        answers = await searches(app, performer)
        path = app.state["search"].elasticsearch
        assert path is not None
        assert path.breaker.transitions.into("open") == 1
        assert await search_counts(app) == expected(settings)
    assert answers == [(200, "postgres", ["Sonata by Qwertzimbel"])] * SEARCHES


async def test_a_listener_that_never_answers_costs_three_budgets_then_none(
    stack: NativeStack, performer: str, deaf: DeafListener
) -> None:
    settings = app_settings(stack, f"http://127.0.0.1:{deaf.port}")
    async with running(settings) as app:
        answers = await searches(app, performer)
        path = app.state["search"].elasticsearch
        assert path is not None
        assert path.breaker.transitions.into("open") == 1
        assert await search_counts(app) == expected(settings)
    assert answers == [(200, "postgres", ["Sonata by Qwertzimbel"])] * SEARCHES
    assert len(deaf.accepted) == settings.search_breaker_fail_max  # no retry, and nothing once the breaker opened
