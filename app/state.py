"""The typed mapping the lifespan yields: everything that lives as long as the process and is shared by requests.

Why the Starlette state pattern instead of globals or ``app.state``: the lifespan yields this mapping, the server
hands each request a shallow copy as ``request.state`` (so pools stay shared, per-request additions do not leak),
and ``app/api/deps.py`` reads it back with its type. Tests get the same objects by entering the lifespan.
See notes/fastapi.md, "App factory and lifespan".
"""

from __future__ import annotations

from typing import TypedDict

from redis.asyncio import Redis

from app.cache.rate_limiter import RateLimiter
from app.db.engines import Engines
from app.db.replica_router import ReplicaRouter
from app.messaging.amqp_connection import AmqpConnection
from app.notifications.webhook_sender import WebhookSender
from app.payments.client import PaymentsClient
from app.security.passwords import PasswordHasher
from app.services.event_cache import EventCaches
from app.services.search import EventSearch
from app.services.unit_of_work import UnitOfWorkFactories
from app.settings import Settings


class AppState(TypedDict):
    settings: Settings
    engines: Engines
    uows: UnitOfWorkFactories
    router: ReplicaRouter
    redis: Redis
    event_caches: EventCaches
    rate_limiter: RateLimiter
    amqp: AmqpConnection
    passwords: PasswordHasher
    payments: PaymentsClient
    webhooks: WebhookSender
    search: EventSearch
