"""``python -m app.worker``: open the pools, subscribe every consumer, run until SIGTERM or SIGINT, stop gracefully.

Why the same settings and pools as the app: the worker writes through the one unit-of-work factory on the primary
(app/services/unit_of_work.py) and reads ``REFSTACK_*`` like the app, so the stack gives it the app's environment.
Nothing is built at import time; everything is closed in reverse order on the way out. Beside the consumers it runs
one periodic job, the inbox's pruning (app/worker/inbox.py). A broker that is down at
start is waited for (aio-pika's robust connection retries), and readiness says "down" meanwhile.
See notes/rabbitmq.md, "The worker and its inbox".
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack

import structlog
from prometheus_client import CollectorRegistry

from app.background import PeriodicJob, running
from app.db.engines import Engines
from app.messaging.amqp_connection import AmqpConnection
from app.notifications.webhook_sender import open_webhook_sender
from app.observability.logging import configure_logging
from app.observability.metrics import build_job_metrics
from app.search.es_search import open_events_index
from app.services.unit_of_work import TransactionTimeouts, UnitOfWorkFactory
from app.settings import Settings
from app.worker.consumers import subscriptions
from app.worker.consuming import Consuming
from app.worker.health import HealthServer
from app.worker.inbox import prune_inbox
from app.worker.metrics import build_worker_metrics

log = structlog.get_logger(__name__)


async def run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as resources:
        engines = Engines.open(settings)
        resources.push_async_callback(engines.dispose)
        uows = UnitOfWorkFactory(engines.primary, TransactionTimeouts.of(settings))
        sender = open_webhook_sender(settings)
        resources.push_async_callback(sender.aclose)
        registry = CollectorRegistry()
        events_index = open_events_index(settings)  # None without REFSTACK_ELASTICSEARCH_URL: the indexer only acks
        if events_index is not None:
            resources.push_async_callback(events_index.client.close)
        consumed = subscriptions(settings, uows, sender, events_index)
        consuming = Consuming(settings, uows, consumed, build_worker_metrics(registry))
        prune = PeriodicJob(
            "inbox-pruner",
            settings.inbox_prune_interval_s,
            lambda: prune_inbox(uows, older_than_s=settings.inbox_retention_s, batch=settings.inbox_prune_batch),
        )
        await resources.enter_async_context(running(prune, build_job_metrics(registry)))
        amqp = AmqpConnection(settings)
        amqp.start()
        resources.push_async_callback(amqp.aclose)

        async def ready() -> bool:
            """Subscribed, not stopping, and the broker answers within the check's bound."""
            if not consuming.ready:
                return False
            try:
                async with asyncio.timeout(settings.health_check_timeout_s):
                    await amqp.round_trip()
            except Exception:  # not connected, frozen, refused: not ready, whatever the reason
                return False
            return True

        if settings.worker_http_port:
            health = HealthServer(settings.worker_http_port, ready, registry)
            await health.start()
            resources.push_async_callback(health.aclose)
        connecting = asyncio.ensure_future(amqp.connection_when_up())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if connecting.done():
            await consuming.start(connecting.result())
            log.info("worker_started")
            await stopping
        connecting.cancel()
        log.info("worker_stopping")
        await consuming.stop()
    log.info("worker_stopped")


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
