"""The search use case: Elasticsearch when it is configured and healthy, PostgreSQL full-text search otherwise.

Why a breaker and a budget: a search box is on every page, and a slow Elasticsearch would hold every request for
as long as it hangs. Each search gives Elasticsearch ``elasticsearch_timeout_s`` (the timeout is inside the guarded
call, so a hang counts as a failure, not as a cancellation the breaker ignores); a failure or a timeout answers from
PostgreSQL in the same request, and ``search_breaker_fail_max`` failures in a row open the breaker (one circuit for
every worker, kept in Redis like the payments breaker), after which searches go straight to PostgreSQL without
paying the timeout, until a trial call finds Elasticsearch back. With no ``elasticsearch_url`` the app never tries:
PostgreSQL is the search engine, and says so. A cursor names the engine that made it, and its next page goes to the
same engine: PostgreSQL always can; an Elasticsearch cursor while Elasticsearch cannot answer is
``SearchUnavailable`` (start the search again). See notes/elasticsearch.md, "Breaker and budget".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from app.observability.metrics import SearchMetrics
from app.resilience.breaker import AsyncCircuitBreaker, CircuitOpen
from app.resilience.shared_circuit import RedisCircuitState
from app.search.es_search import ElasticsearchEvents, open_events_index
from app.search.page import Backend, SearchHit, SearchRequest, SearchResult
from app.search.postgres import search_events
from app.services.unit_of_work import UnitOfWorkFactory
from app.settings import Settings

BREAKER = "elasticsearch"
PostgresSearch = Callable[[SearchRequest], Awaitable[list[SearchHit]]]


class SearchUnavailable(Exception):
    """The cursor's engine (Elasticsearch) cannot answer now; ``retry_after_s`` is how long its breaker stays open."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"elasticsearch cannot answer; retry in {retry_after_s:.1f} s")
        self.retry_after_s = retry_after_s


async def search_on_postgres(uows: UnitOfWorkFactory, request: SearchRequest) -> list[SearchHit]:
    async with uows() as uow:
        return await search_events(uow.session, request)


def search_breaker(settings: Settings, redis: Redis | None) -> AsyncCircuitBreaker:
    return AsyncCircuitBreaker(
        name=BREAKER,
        fail_max=settings.search_breaker_fail_max,
        reset_timeout_s=settings.search_breaker_reset_s,
        shared=(
            RedisCircuitState(redis, BREAKER, timeout_s=settings.breaker_exchange_timeout_s)
            if redis is not None
            else None
        ),
    )


@dataclass(frozen=True)
class ElasticsearchPath:
    """Elasticsearch with the breaker that guards it and the share of a request it may take."""

    events: ElasticsearchEvents
    breaker: AsyncCircuitBreaker
    budget_s: float


class EventSearch:
    """Answers a search from Elasticsearch or PostgreSQL and says which (``SearchResult.backend``)."""

    def __init__(self, elasticsearch: ElasticsearchPath | None, metrics: SearchMetrics) -> None:
        self.elasticsearch = elasticsearch
        self._metrics = metrics

    async def aclose(self) -> None:
        if self.elasticsearch is not None:
            await self.elasticsearch.events.client.close()

    async def search(self, request: SearchRequest, on_postgres: PostgresSearch, pinned: Backend | None) -> SearchResult:
        """``pinned``: the engine the cursor names (None for a first page)."""
        if pinned == "postgres":
            return await self._postgres(request, on_postgres, "cursor")
        path = self.elasticsearch
        if path is None:
            if pinned == "elasticsearch":
                raise SearchUnavailable(0.0)
            return await self._postgres(request, on_postgres, "absent")
        try:
            hits = await path.breaker.call(lambda: self._within_budget(path, request))
        except CircuitOpen as open_circuit:
            if pinned == "elasticsearch":
                raise SearchUnavailable(open_circuit.retry_after_s) from None
            return await self._postgres(request, on_postgres, "breaker-open")
        except Exception:  # a timeout, a refused connection, a 5xx: the breaker counted it
            if pinned == "elasticsearch":
                raise SearchUnavailable(path.breaker.seconds_until_trial()) from None
            return await self._postgres(request, on_postgres, "failed")
        self._metrics.answered("elasticsearch", "chosen")
        return SearchResult(hits, "elasticsearch")

    @staticmethod
    async def _within_budget(path: ElasticsearchPath, request: SearchRequest) -> list[SearchHit]:
        async with asyncio.timeout(path.budget_s):
            return await path.events.search(request)

    async def _postgres(self, request: SearchRequest, on_postgres: PostgresSearch, reason: str) -> SearchResult:
        hits = await on_postgres(request)
        self._metrics.answered("postgres", reason)
        return SearchResult(hits, "postgres")


def open_event_search(settings: Settings, redis: Redis | None, metrics: SearchMetrics) -> EventSearch:
    """The process's search: with Elasticsearch (one pooled client, one breaker shared through ``redis``) when
    ``elasticsearch_url`` is set, PostgreSQL alone otherwise; nothing connects until the first search."""
    events = open_events_index(settings)
    if events is None:
        return EventSearch(None, metrics)
    return EventSearch(
        ElasticsearchPath(events, search_breaker(settings, redis), settings.elasticsearch_timeout_s), metrics
    )
