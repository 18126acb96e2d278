"""The composition root: ``create_app(settings)`` wires routers, error handling and observability, and its
lifespan opens every pool and client and closes them in reverse order.

Why a factory and nothing at import time: tests build an app per configuration (closed ports, deaf listeners),
several apps can live in one process, and ``uvicorn app.main:create_app --factory --workers 2`` builds one per
worker after the fork, so no pool or socket is ever shared across processes. See notes/fastapi.md,
"App factory and lifespan".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry

from app.api import health
from app.api.allowed_methods import install_allowed_methods
from app.api.body_limit import BodySizeLimitMiddleware
from app.api.docs import install_offline_docs
from app.api.entry_point import build_entry_router
from app.api.metrics import build_metrics_router
from app.api.openapi import install_problem_openapi, operation_id
from app.api.problems import install_problem_handlers
from app.api.security_headers import SecurityHeadersMiddleware
from app.api.unhandled import UnhandledErrorMiddleware
from app.api.v1 import API_PREFIX, build_api_router
from app.api.v1.event_reads import HotEventReads
from app.background import PeriodicJob, running
from app.cache.client import open_redis
from app.cache.lease import RedisLease
from app.cache.rate_limiter import RateLimiter
from app.db.engines import Engines
from app.db.replica_router import ReplicaRouter
from app.messaging.amqp_connection import AmqpConnection
from app.messaging.confirmed_publisher import ConfirmedPublisher
from app.messaging.outbox_listener import OutboxListener
from app.messaging.outbox_relay import OutboxRelay, RelayBounds
from app.notifications.webhook_sender import open_webhook_sender
from app.observability.access import AccessLogMiddleware
from app.observability.logging import configure_logging
from app.observability.metrics import AppMetrics, exposition_registry
from app.observability.request_id import RequestIdMiddleware
from app.observability.trace_context import TraceContextMiddleware
from app.payments.client import open_payments_client
from app.resilience.breaker import AsyncCircuitBreaker
from app.resilience.shared_circuit import SHARED_REFRESH_INTERVAL_S
from app.security.passwords import PasswordHasher
from app.services.event_cache import build_event_caches
from app.services.reconciler import RECONCILER_LEASE, LeasedReconciler, PaymentReconciler
from app.services.search import open_event_search
from app.services.sweeper import HoldSweeper
from app.services.unit_of_work import TransactionTimeouts, UnitOfWorkFactories, UnitOfWorkFactory
from app.settings import Settings
from app.state import AppState


@asynccontextmanager
async def relaying(
    settings: Settings, uows: UnitOfWorkFactory, amqp: AmqpConnection, metrics: AppMetrics
) -> AsyncIterator[OutboxRelay]:
    """The outbox relay, drained on every NOTIFY and polled as the safety net, and its pruner
    (notes/rabbitmq.md, "The outbox and its relay")."""
    publisher = ConfirmedPublisher(amqp, settings)
    relay = OutboxRelay(uows, publisher, RelayBounds.of(settings), metrics.outbox)
    listener = OutboxListener(
        str(settings.outbox_listen_url or settings.database_url),
        relay.drain,
        connect_timeout_s=settings.db_connect_timeout_s,
        backoff_max_s=settings.outbox_backoff_max_s,
    )
    poll = PeriodicJob("outbox-relay", settings.outbox_poll_interval_s, relay.drain, immediately=True)
    prune = PeriodicJob(
        "outbox-pruner",
        settings.outbox_prune_interval_s,
        lambda: relay.prune_once(older_than_s=settings.outbox_retention_s, batch=settings.outbox_prune_batch),
    )
    async with AsyncExitStack() as stack:
        stack.push_async_callback(publisher.aclose)
        await stack.enter_async_context(listener.running())
        await stack.enter_async_context(running(poll, metrics.jobs))
        await stack.enter_async_context(running(prune, metrics.jobs))
        yield relay


def watching(breaker: AsyncCircuitBreaker, metrics: AppMetrics) -> AbstractAsyncContextManager[asyncio.Task[None]]:
    """The breaker's transitions and views on /metrics, refreshed from Redis by a periodic job so that /metrics tells
    each worker's view even while no call is made."""
    breaker.watch(metrics.breaker.transition)
    breaker.watch_view(
        lambda view: metrics.breaker.observe(
            breaker=view.name, state=view.state, failures=view.failures, shared=view.shared
        )
    )
    metrics.breaker.state.labels(breaker=breaker.name).set(0.0)
    name = f"{breaker.name}-breaker-refresh"
    return running(PeriodicJob(name, SHARED_REFRESH_INTERVAL_S, breaker.refresh, immediately=True), metrics.jobs)


def build_lifespan(
    settings: Settings, metrics: AppMetrics
) -> Callable[[FastAPI], AbstractAsyncContextManager[AppState]]:
    """Open pools and clients, none of which needs its server up yet; close them in reverse order."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[AppState]:
        async with AsyncExitStack() as resources:
            engines = Engines.open(settings)
            resources.push_async_callback(engines.dispose)
            redis = open_redis(settings)
            resources.push_async_callback(redis.aclose)
            event_caches = build_event_caches(redis, settings, metrics.cache)
            invalidations = PeriodicJob(  # this worker's subscription, made again after a loss
                "cache-invalidations",
                settings.cache_invalidation_retry_s,
                event_caches.invalidations.listen,
                immediately=True,
            )
            await resources.enter_async_context(running(invalidations, metrics.jobs))
            uows = UnitOfWorkFactories(
                engines.primary,
                engines.replica if settings.replica_url else None,
                TransactionTimeouts.of(settings),
                on_connection=engines.bounded(),  # no SET LOCAL where the connection carries the bounds
            )
            replica_router = ReplicaRouter(
                primary=engines.primary,
                replica=engines.replica if settings.replica_url else None,
                redis=redis,
                settings=settings,
                metrics=metrics.replica,
            )
            resources.callback(replica_router.cancel_abandoned)
            replica_check = PeriodicJob(
                "replica-health", settings.replica_check_interval_s, replica_router.check_once, immediately=True
            )
            await resources.enter_async_context(running(replica_check, metrics.jobs))
            amqp = AmqpConnection(settings)
            amqp.start()
            resources.push_async_callback(amqp.aclose)
            if settings.outbox_relay_enabled:  # stopped before the connection it publishes on is closed
                await resources.enter_async_context(relaying(settings, uows.primary, amqp, metrics))
            if settings.sweeper_enabled:
                sweeper = HoldSweeper(uows.primary, batch=settings.sweeper_batch)
                sweep = PeriodicJob("hold-sweeper", settings.sweeper_interval_s, sweeper.sweep_once)
                await resources.enter_async_context(running(sweep, metrics.jobs))
            payments = open_payments_client(settings, redis)  # one breaker state for every worker, kept in Redis
            resources.push_async_callback(payments.aclose)
            await resources.enter_async_context(watching(payments.breaker, metrics))
            search = open_event_search(settings, redis, metrics.search)  # PostgreSQL alone without elasticsearch_url
            resources.push_async_callback(search.aclose)
            if search.elasticsearch is not None:
                await resources.enter_async_context(watching(search.elasticsearch.breaker, metrics))
            if settings.reconciler_enabled:  # stopped before the payments client it asks is closed
                reconciler = PaymentReconciler(
                    uows.primary,
                    payments,
                    grace_s=settings.reconciler_grace_s,
                    batch=settings.reconciler_batch,
                    metrics=metrics.reconciler,
                )
                lease = RedisLease(redis, RECONCILER_LEASE, ttl_ms=round(settings.reconciler_lease_ttl_s * 1000))
                one_at_a_time = LeasedReconciler(reconciler, lease, metrics.reconciler)
                reconcile = PeriodicJob("payment-reconciler", settings.reconciler_interval_s, one_at_a_time.run_round)
                await resources.enter_async_context(running(reconcile, metrics.jobs))
            webhooks = open_webhook_sender(settings)
            resources.push_async_callback(webhooks.aclose)
            yield AppState(
                settings=settings,
                engines=engines,
                uows=uows,
                router=replica_router,
                event_caches=event_caches,
                redis=redis,
                rate_limiter=RateLimiter(redis, metrics.rate_limits),
                amqp=amqp,
                passwords=PasswordHasher(),
                payments=payments,
                webhooks=webhooks,
                search=search,
            )

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings if settings is not None else Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    registry = CollectorRegistry()
    metrics = AppMetrics.on(registry)

    app = FastAPI(
        title="refstack",
        version="0.1.0",
        lifespan=build_lifespan(settings, metrics),
        docs_url=None,  # install_offline_docs serves /docs from local files; ReDoc would load from a CDN
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    install_problem_handlers(app)
    install_allowed_methods(app)
    install_problem_openapi(app)
    install_offline_docs(app)
    app.include_router(health.build_health_router())
    app.include_router(build_api_router())
    app.include_router(build_entry_router())
    app.include_router(build_metrics_router(exposition_registry(registry)))

    # add_middleware wraps: the last added runs first. Request flows RequestId → TraceContext → SecurityHeaders →
    # AccessLog → CORS (only with an allow-list) → Unhandled → BodySize → HotEventReads, so even a 500, a preflight
    # or a read answered before routing carries the headers and its log line.
    app.add_middleware(HotEventReads, prefix=API_PREFIX)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(UnhandledErrorMiddleware)
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match", "If-None-Match"],
            expose_headers=["Location", "ETag", "Retry-After", "X-Request-ID"],
            allow_credentials=False,  # bearer tokens travel in a header, never in cookies
            max_age=600,
        )
    app.add_middleware(AccessLogMiddleware, metrics=metrics.http)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(TraceContextMiddleware)  # after the request id is chosen: a Cause carries both
    app.add_middleware(RequestIdMiddleware)
    return app
