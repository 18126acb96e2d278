"""One settings object for the whole service, read from ``REFSTACK_*`` environment variables.

Why one object: every knob that changes behaviour between a laptop, a test run and production lives here and is
validated at boot, so a misconfigured process refuses to start instead of failing at its first request. Nothing
reads the environment anywhere else, and nothing builds a ``Settings`` at import time: ``create_app`` receives
one (see notes/fastapi.md and notes/docker.md).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AmqpDsn, Field, HttpUrl, PostgresDsn, RedisDsn, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
# Not a knob: the published contract states it (HoldIn's maxItems in app/api/v1/schemas.py), so a deployment that
# changed it would refuse requests its own schema calls valid, or accept what the schema forbids
MAX_SEATS_PER_HOLD = 10
DEMO_JWT_SECRET = "refstack-demo-signing-key-not-for-production-use"  # noqa: S105 - public on purpose; refused in production
DEMO_WEBHOOK_KEY = "refstack-demo-webhook-key-not-for-production-use"


class Settings(BaseSettings):
    """Runtime configuration; every field maps to ``REFSTACK_<FIELD_NAME>``."""

    model_config = SettingsConfigDict(env_prefix="REFSTACK_", extra="ignore", frozen=True)

    env: Literal["demo", "test", "production"] = "demo"

    database_url: PostgresDsn = PostgresDsn("postgresql+asyncpg://app:app@127.0.0.1:21432/refstack")
    replica_url: PostgresDsn | None = None
    redis_url: RedisDsn = RedisDsn("redis://127.0.0.1:21379/0")
    amqp_url: AmqpDsn = AmqpDsn("amqp://guest:guest@127.0.0.1:21672/")
    payments_url: HttpUrl = HttpUrl("http://127.0.0.1:21090")
    elasticsearch_url: HttpUrl | None = None

    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_connect_timeout_s: float = Field(default=1.0, gt=0)
    db_command_timeout_s: float = Field(default=5.0, gt=0)
    db_pool_timeout_s: float = Field(default=2.0, gt=0)
    # database_url is a PgBouncer in transaction mode: no statement is kept prepared across transactions
    # (notes/db_scaling.md, "Pooling: PgBouncer in transaction mode")
    db_transaction_pooler: bool = False
    # Server-side, per transaction (SET LOCAL): below command_timeout, so the server stops first and says why
    db_lock_timeout_ms: int = Field(default=2000, ge=1)
    db_statement_timeout_ms: int = Field(default=4000, ge=1)
    # A migration queued behind a long transaction would queue every query behind itself: give up fast, retry later
    migration_lock_timeout_ms: int = Field(default=3000, ge=1)
    redis_timeout_s: float = Field(default=1.0, gt=0)
    # Cache-aside (see notes/redis.md, "Cache-aside"): each cache command on a request's path gets this long, then
    # the request reads the database instead; a miss waits at most cache_fill_wait_s for another reader's fill
    cache_redis_timeout_s: float = Field(default=0.1, gt=0, le=1.0)
    cache_fill_wait_s: float = Field(default=0.5, gt=0, le=5.0)
    event_cache_ttl_s: float = Field(default=30.0, gt=0)
    event_cache_missing_ttl_s: float = Field(default=2.0, gt=0)
    # The staleness bound of GET /events/{id}/availability after a hold or a booking
    availability_cache_ttl_s: float = Field(default=1.0, gt=0, le=10.0)
    # Two levels (notes/redis.md, "Two levels: a worker's memory in front of Redis"): each worker holds up to
    # local_cache_max_entries events and list pages (0: no first level) for at most local_cache_ttl_s, the bound on
    # staleness when an invalidation message is lost; a lost subscription is made again after the retry interval
    local_cache_ttl_s: float = Field(default=1.0, gt=0, le=10.0)
    local_cache_max_entries: int = Field(default=10_000, ge=0, le=1_000_000)
    cache_invalidation_retry_s: float = Field(default=0.5, gt=0, le=10.0)
    amqp_timeout_s: float = Field(default=2.0, gt=0)
    amqp_reconnect_interval_s: float = Field(default=5.0, gt=0)
    health_check_timeout_s: float = Field(default=1.0, gt=0, le=1.0)

    jwt_secret: str = Field(default=DEMO_JWT_SECRET, min_length=32)
    jwt_issuer: str = "refstack"
    jwt_audience: str = "refstack-api"
    access_token_ttl_s: int = Field(default=900, ge=30, le=86400)
    refresh_token_ttl_s: int = Field(default=14 * 24 * 3600, ge=60, le=90 * 24 * 3600)
    demo_password: str = "refstack-demo"  # noqa: S105 - the printed demo credential for `make up`

    hold_ttl_s: int = Field(default=300, ge=1, le=3600)

    @property
    def max_seats_per_hold(self) -> int:
        """``MAX_SEATS_PER_HOLD``, where the hold route reads it (no longer a setting: see the constant)."""
        return MAX_SEATS_PER_HOLD

    # API6 (see notes/security.md, "Resource caps per user"): one account cannot hold a whole event
    max_active_holds_per_user: int = Field(default=3, ge=1, le=1000)
    # Per-account GCRA limits in Redis (see notes/redis.md, "Rate limits in one round trip"): requests per window,
    # all of them allowed back to back; far above what a person clicks, and above test_contention's 50 per buyer
    rate_limit_window_s: int = Field(default=60, ge=1, le=3600)
    rate_limit_holds: int = Field(default=120, ge=1, le=100_000)
    rate_limit_bookings: int = Field(default=60, ge=1, le=100_000)
    # A frozen Redis costs a limited request at most this much before its route fails open or closed; not less
    # than Redis' own timeout by default: at 0.25 s a burst of 20 new connections on a busy host failed open
    rate_limit_timeout_s: float = Field(default=1.0, gt=0, le=2.0)
    sweeper_enabled: bool = True  # each app worker runs one HoldSweeper; off for HTTP-only unit tests
    sweeper_interval_s: float = Field(default=1.0, gt=0)
    sweeper_batch: int = Field(default=500, ge=1)
    # PaymentReconciler (see notes/fault_tolerance.md, "Reconciling unknown outcomes"): settles `paying` holds whose
    # user never retried, asking the provider by key once the attempt is older than the grace period
    reconciler_enabled: bool = True
    reconciler_interval_s: float = Field(default=5.0, gt=0)
    reconciler_batch: int = Field(default=100, ge=1, le=10_000)
    reconciler_grace_s: float = Field(default=60.0, gt=0)
    # One round at a time across workers and instances, under a Redis lease renewed every third of its TTL
    # (notes/redis.md, "A lease with fencing tokens"); a holder that dies frees it after one TTL
    reconciler_lease_ttl_s: float = Field(default=15.0, gt=0)
    # OutboxRelay (notes/rabbitmq.md, "The outbox and its relay"): one per app worker, woken by NOTIFY on a direct
    # connection to the primary (PgBouncer in transaction mode cannot carry LISTEN; None: database_url) and polling
    # as the safety net; each partition's batch is published with confirms, each publish bounded by the timeout;
    # while the broker is down or blocked a drain retries with full-jitter backoff, then waits for the next poll
    outbox_relay_enabled: bool = True
    outbox_listen_url: PostgresDsn | None = None
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    outbox_batch: int = Field(default=200, ge=1, le=10_000)
    outbox_publish_timeout_s: float = Field(default=2.0, gt=0, le=30.0)
    outbox_retry_attempts: int = Field(default=4, ge=1, le=20)
    outbox_backoff_base_s: float = Field(default=0.1, gt=0)
    outbox_backoff_max_s: float = Field(default=2.0, gt=0)
    # published rows are kept this long (to read what was sent), then deleted in bounded batches
    outbox_retention_s: float = Field(default=600.0, ge=0)
    outbox_prune_interval_s: float = Field(default=10.0, gt=0)
    outbox_prune_batch: int = Field(default=1000, ge=1, le=100_000)

    # ReplicaRouter (see notes/db_scaling.md, "ReplicaRouter"): every probe it makes is bounded by the check timeout
    replica_check_interval_s: float = Field(default=0.5, gt=0)
    replica_check_timeout_s: float = Field(default=0.25, gt=0, le=1.0)
    replica_read_timeout_s: float = Field(default=1.0, gt=0, le=5.0)
    replica_max_lag_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    replica_max_lag_s: float = Field(default=5.0, gt=0)
    replica_lsn_cache_s: float = Field(default=0.15, ge=0)
    read_your_writes_ttl_s: float = Field(default=10.0, gt=0)

    payments_timeout_s: float = Field(default=2.0, gt=0)
    payments_max_attempts: int = Field(default=3, ge=1, le=10)
    payments_backoff_base_s: float = Field(default=0.1, gt=0)
    payments_backoff_max_s: float = Field(default=1.0, gt=0)
    payments_deadline_s: float = Field(default=4.0, gt=0)
    payments_breaker_fail_max: int = Field(default=5, ge=1)
    payments_breaker_reset_s: float = Field(default=10.0, gt=0)
    # the bound on one exchange of a shared breaker with Redis (see notes/redis.md, "One breaker for all workers"):
    # past it the worker goes on with its own breaker for a second; never above the Redis client's own timeout
    breaker_exchange_timeout_s: float = Field(default=0.075, gt=0, le=1.0)
    # API10 (see notes/security.md, "Unsafe consumption of APIs"): a provider reply is read up to this many bytes
    payments_max_reply_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)

    # API7 (see notes/security.md, "SSRF"): organizers' webhooks; a ping answers within Nginx's 5 s read timeout
    webhook_timeout_s: float = Field(default=2.0, gt=0, le=10.0)
    webhook_deadline_s: float = Field(default=4.0, gt=0, le=30.0)
    webhook_max_redirects: int = Field(default=3, ge=0, le=10)
    outbound_resolve_timeout_s: float = Field(default=1.0, gt=0, le=5.0)
    # Each webhook's signing secret is HMAC(this key, the webhook's salt): the database alone cannot sign
    # (notes/rabbitmq.md, "What users receive"); refused in production while it is the published demo value
    webhook_signing_key: str = Field(default=DEMO_WEBHOOK_KEY, min_length=32)

    # The worker (`python -m app.worker`; notes/rabbitmq.md, "Retries, parking and poison messages"): a failed
    # message waits in the tier of its failure count, then parks; a message its consumer dies with is offered at
    # most worker_delivery_limit times (x-delivery-limit), then parks. Both are queue arguments: change them and
    # the broker's queues must be recreated (the tier delays are in the retry queues' names for that reason).
    worker_retry_delays_s: list[float] = Field(default_factory=lambda: [1.0, 10.0, 60.0], min_length=1, max_length=6)
    worker_delivery_limit: int = Field(default=5, ge=1, le=100)
    # Readiness and /metrics of the worker process, on loopback (0: no HTTP endpoint)
    worker_http_port: int = Field(default=21081, ge=0, le=65535)
    worker_shutdown_grace_s: float = Field(default=10.0, gt=0, le=60.0)
    # Inbox rows are kept this long, then deleted by the worker in bounded batches: a copy of a message arriving later
    # than this after the first was applied would be applied again (notes/rabbitmq.md, "Pruning the inbox")
    inbox_retention_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    inbox_prune_interval_s: float = Field(default=60.0, gt=0)
    inbox_prune_batch: int = Field(default=1000, ge=1, le=100_000)

    # Search (see notes/elasticsearch.md, "Breaker and budget"): Elasticsearch gets this much of a search request
    # (no client retries), then PostgreSQL answers; this many failures in a row open the breaker for reset_s
    elasticsearch_timeout_s: float = Field(default=0.3, gt=0, le=5.0)
    search_breaker_fail_max: int = Field(default=3, ge=1)
    search_breaker_reset_s: float = Field(default=10.0, gt=0)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    # Browser origins allowed to call the API (JSON list in the environment); empty: no CORS headers at all
    cors_allow_origins: list[str] = Field(default_factory=list)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True

    @field_validator("elasticsearch_url", mode="before")
    @classmethod
    def empty_means_absent(cls, url: object) -> object:
        """``REFSTACK_ELASTICSEARCH_URL=`` (set but empty, as compose passes it through) means no Elasticsearch."""
        return None if url == "" else url

    @field_validator("cors_allow_origins")
    @classmethod
    def origins_are_exact(cls, origins: list[str]) -> list[str]:
        """An allow-list names exact origins (scheme, host, optional port): no ``*``, no path, no trailing slash."""
        wrong = [origin for origin in origins if not _ORIGIN.fullmatch(origin)]
        if wrong:
            raise ValueError(f"REFSTACK_CORS_ALLOW_ORIGINS takes exact origins like https://tickets.example: {wrong}")
        return origins

    @field_validator("worker_retry_delays_s")
    @classmethod
    def retry_delays_grow(cls, delays: list[float]) -> list[float]:
        """Each tier waits longer than the one before it, and at least a millisecond (the TTL is in ms)."""
        if any(delay < 0.001 for delay in delays) or delays != sorted(set(delays)):
            raise ValueError(f"REFSTACK_WORKER_RETRY_DELAYS_S must grow strictly from at least 0.001 s: {delays}")
        return delays

    @model_validator(mode="after")
    def refuse_demo_secrets_in_production(self) -> Settings:
        """Misconfiguration fails at boot: production never runs with the published demo signing key."""
        if self.env == "production" and self.jwt_secret == DEMO_JWT_SECRET:
            raise ValueError("REFSTACK_JWT_SECRET must be set in production (the demo key is public)")
        if self.env == "production" and self.webhook_signing_key == DEMO_WEBHOOK_KEY:
            raise ValueError("REFSTACK_WEBHOOK_SIGNING_KEY must be set in production (the demo key is public)")
        return self

    @model_validator(mode="after")
    def server_timeouts_fire_before_the_clients(self) -> Settings:
        """A lock wait is one statement's worth at most, and the server must cancel a statement before asyncpg's
        ``command_timeout`` gives up on it, or the caller sees a bare client timeout instead of 55P03/57014."""
        if not self.db_lock_timeout_ms <= self.db_statement_timeout_ms < self.db_command_timeout_s * 1000:
            raise ValueError(
                "need REFSTACK_DB_LOCK_TIMEOUT_MS <= REFSTACK_DB_STATEMENT_TIMEOUT_MS"
                " < REFSTACK_DB_COMMAND_TIMEOUT_S * 1000"
            )
        return self

    @model_validator(mode="after")
    def a_lease_outlasts_a_failed_renewal(self) -> Settings:
        """A renewal is sent every third of the TTL and may take ``redis_timeout_s`` to fail; the lease must still
        be held when it does, or a slow Redis alone would hand it to a second reconciler (only the reconciler
        takes the lease)."""
        if self.reconciler_enabled and self.reconciler_lease_ttl_s < 3 * self.redis_timeout_s:
            raise ValueError("need REFSTACK_RECONCILER_LEASE_TTL_S >= 3 * REFSTACK_REDIS_TIMEOUT_S")
        return self

    @model_validator(mode="after")
    def reconcile_only_after_every_attempt_has_ended(self) -> Settings:
        """A booking's charge ends within the payments deadline (retries included) and its claim and record are
        one bounded statement round each; reconciling sooner could give back a hold whose charge is still being
        made, and the booking would then find its hold gone after the customer paid."""
        attempt_s = self.payments_deadline_s + 2 * self.db_command_timeout_s
        if self.reconciler_grace_s <= attempt_s:
            raise ValueError(
                "REFSTACK_RECONCILER_GRACE_S must exceed payments_deadline_s + 2 * db_command_timeout_s"
                f" ({attempt_s} s)"
            )
        return self

    @model_validator(mode="after")
    def remember_writes_longer_than_tolerated_lag(self) -> Settings:
        """A user's write LSN must outlive the lag a replica may have while still in rotation, or it is forgotten
        while the replica still misses that write and the user reads stale data."""
        tolerated_s = self.replica_max_lag_s + self.replica_check_interval_s + self.replica_check_timeout_s
        if self.read_your_writes_ttl_s <= tolerated_s:
            raise ValueError(
                f"REFSTACK_READ_YOUR_WRITES_TTL_S must exceed replica_max_lag_s + check interval + check timeout"
                f" ({tolerated_s} s)"
            )
        return self
