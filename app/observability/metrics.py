"""HTTP metrics on a registry owned by one app, and how they are exposed with one or several workers.

Why a registry per app: ``create_app`` builds its own ``CollectorRegistry``, so two apps in one test process never
collide on metric names and nothing is registered at import time. Why the multiprocess branch: under
``uvicorn --workers 2`` each worker counts only its own requests; when ``PROMETHEUS_MULTIPROC_DIR`` is set,
prometheus_client writes every value to a per-process file there and ``MultiProcessCollector`` sums the files at
scrape time, so ``/metrics`` answers for the whole instance whichever worker serves it.
See notes/fastapi.md, "Metrics with several workers".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

# The switch prometheus_client itself reads when it is imported (it picks file-backed values then); we read the
# same variable so exposition always matches how values are stored. It is not a Settings field for that reason.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "<unmatched>"
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class HttpMetrics:
    """Request count and latency, labelled by route template (never the raw path), method and status.

    The labelled children are looked up once per (method, route, status) and kept: ``labels()`` takes a lock and
    builds its key on every call, which was a third of this observation's cost on every request (notes/fastapi.md,
    "What a request costs"). Route templates and statuses are few, so the map stays small."""

    requests: Counter
    latency: Histogram
    _children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = field(default_factory=dict, compare=False)

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        children = self._children.get((method, route, status))
        if children is None:
            labels = {"method": method, "route": route, "status": str(status)}
            children = self._children[(method, route, status)] = (
                self.requests.labels(**labels),
                self.latency.labels(**labels),
            )
        children[0].inc()
        children[1].observe(seconds)


def build_http_metrics(registry: CollectorRegistry) -> HttpMetrics:
    names = ("method", "route", "status")
    return HttpMetrics(
        requests=Counter("http_requests", "HTTP requests handled.", names, registry=registry),
        latency=Histogram(
            "http_request_duration_seconds",
            "Time from request start to the end of the response.",
            names,
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class ReplicaMetrics:
    """What the ReplicaRouter saw (lag, in rotation or not) and did (reads by target and reason).

    Gauges are per worker; under multiprocess exposition ``livemax`` shows the worst live worker's view.
    See notes/db_scaling.md, "ReplicaRouter".
    """

    lag_bytes: Gauge
    lag_seconds: Gauge
    in_rotation: Gauge
    reads: Counter

    def routed(self, *, target: str, reason: str) -> None:
        self.reads.labels(target=target, reason=reason).inc()


def build_replica_metrics(registry: CollectorRegistry) -> ReplicaMetrics:
    return ReplicaMetrics(
        lag_bytes=Gauge(
            "db_replica_lag_bytes",
            "WAL the replica has not replayed yet.",
            registry=registry,
            multiprocess_mode="livemax",
        ),
        lag_seconds=Gauge(
            "db_replica_lag_seconds",
            "Age of the last replayed commit while WAL is outstanding (0 when caught up).",
            registry=registry,
            multiprocess_mode="livemax",
        ),
        in_rotation=Gauge(
            "db_replica_in_rotation",
            "1 when reads may go to the replica.",
            registry=registry,
            multiprocess_mode="livemin",
        ),
        reads=Counter(
            "db_reads_routed",
            "Read requests by the database that served them and why.",
            ("target", "reason"),
            registry=registry,
        ),
    )


BREAKER_STATE_VALUES = {"closed": 0.0, "half-open": 1.0, "open": 2.0}


@dataclass(frozen=True)
class BreakerMetrics:
    """Circuit breakers: state per breaker (0 closed, 1 half-open, 2 open; the worst live worker's view), the
    transitions each worker made, and per worker (``pid`` under multiprocess) its failure count and whether its
    view is the state shared through Redis (1) or its local breaker (0). See notes/redis.md."""

    state: Gauge
    transitions: Counter
    failures: Gauge
    shared: Gauge

    def transition(self, breaker: str, before: str, after: str) -> None:
        self.state.labels(breaker=breaker).set(BREAKER_STATE_VALUES.get(after, 0.0))
        self.transitions.labels(breaker=breaker, from_state=before, to_state=after).inc()

    def observe(self, *, breaker: str, state: str, failures: int, shared: bool) -> None:
        """What one worker knows of the circuit after an exchange with the shared state."""
        self.state.labels(breaker=breaker).set(BREAKER_STATE_VALUES.get(state, 0.0))
        self.failures.labels(breaker=breaker).set(failures)
        self.shared.labels(breaker=breaker).set(1.0 if shared else 0.0)


def build_breaker_metrics(registry: CollectorRegistry) -> BreakerMetrics:
    return BreakerMetrics(
        state=Gauge(
            "circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ["breaker"],
            registry=registry,
            multiprocess_mode="livemax",
        ),
        transitions=Counter(
            "circuit_breaker_transitions",
            "Circuit breaker state changes.",
            ["breaker", "from_state", "to_state"],
            registry=registry,
        ),
        failures=Gauge(
            "circuit_breaker_failures",
            "Consecutive failures counted while closed, as this worker last saw them (shared or local).",
            ["breaker"],
            registry=registry,
            multiprocess_mode="liveall",
        ),
        shared=Gauge(
            "circuit_breaker_shared",
            "1 when this worker's breaker state is the one shared through Redis, 0 when it is its local fallback.",
            ["breaker"],
            registry=registry,
            multiprocess_mode="liveall",
        ),
    )


@dataclass(frozen=True)
class ReconcilerMetrics:
    """Stuck ``paying`` holds settled by the PaymentReconciler, by outcome: booked, released, unknown (left for
    the next round) and superseded (the hold moved on meanwhile). See notes/fault_tolerance.md, "Reconciling
    unknown outcomes". And its rounds, by outcome: ran (under the Redis lease), busy (another held it), redis-down
    (skipped) and fenced (a write refused for an old token); see notes/redis.md, "A lease with fencing tokens"."""

    settled: Counter
    rounds: Counter

    def observe(self, outcome: str) -> None:
        self.settled.labels(outcome=outcome).inc()

    def round(self, outcome: str) -> None:
        self.rounds.labels(outcome=outcome).inc()


def build_reconciler_metrics(registry: CollectorRegistry) -> ReconcilerMetrics:
    return ReconcilerMetrics(
        settled=Counter(
            "payment_reconciliations",
            "Paying holds the reconciler asked the provider about, by outcome.",
            ["outcome"],
            registry=registry,
        ),
        rounds=Counter(
            "payment_reconciler_rounds",
            "Rounds of the payment reconciler's periodic job, by outcome (ran, busy, redis-down, fenced).",
            ["outcome"],
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class OutboxMetrics:
    """The outbox relay (app/messaging/outbox_relay.py): messages published (confirmed), returned as unroutable
    (kept, not marked), and failed (broker down, blocked or nacked: kept for the next try); the backlog (rows not
    yet published) and the age of its oldest row. See notes/rabbitmq.md, "The outbox and its relay"."""

    messages: Counter
    backlog: Gauge
    oldest_age_s: Gauge

    def count(self, outcome: str, n: int = 1) -> None:
        if n:
            self.messages.labels(outcome=outcome).inc(n)

    def observe_backlog(self, *, messages: int, oldest_age_s: float) -> None:
        self.backlog.set(messages)
        self.oldest_age_s.set(oldest_age_s)


def build_outbox_metrics(registry: CollectorRegistry) -> OutboxMetrics:
    return OutboxMetrics(
        messages=Counter(
            "outbox_messages",
            "Outbox messages the relay sent, by outcome (published, returned, failed).",
            ["outcome"],
            registry=registry,
        ),
        backlog=Gauge(
            "outbox_backlog_messages",
            "Outbox rows not published yet.",
            registry=registry,
            multiprocess_mode="livemax",
        ),
        oldest_age_s=Gauge(
            "outbox_backlog_oldest_age_seconds",
            "Age of the oldest outbox row not published yet (0 when there is none).",
            registry=registry,
            multiprocess_mode="livemax",
        ),
    )


@dataclass(frozen=True)
class JobMetrics:
    """Runs of each periodic job (app/background.py), by outcome: ok or failed. See notes/fastapi.md."""

    runs: Counter

    def observe(self, *, job: str, outcome: str) -> None:
        self.runs.labels(job=job, outcome=outcome).inc()


def build_job_metrics(registry: CollectorRegistry) -> JobMetrics:
    return JobMetrics(
        runs=Counter(
            "background_job_runs",
            "Runs of each periodic background job, by outcome.",
            ["job", "outcome"],
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class CacheMetrics:
    """Both levels of each cache. Redis (app/cache/aside.py): every request that reached it, by outcome: hit,
    coalesced (joined this worker's lookup of the same key), miss (won the fill lock and loaded), refresh (reloaded
    ahead of expiry), refresh-failed (the reload failed: served the still-valid entry), waited (read another reader's
    fill), gave-up (the fill did not come in time: loaded), redis-down (loaded without the cache), and store-failed
    per refused store. This worker's memory (app/cache/local.py): lookups by outcome (hit: answered with no Redis
    round trip; miss: went on to Redis), evictions by reason (lru, expired, invalidated, flushed), entries held.
    The invalidation channel (app/cache/invalidation.py): messages received, subscriptions made and lost, and per
    worker whether it is subscribed now. See notes/redis.md, "Cache-aside" and "Two levels"."""

    requests: Counter
    local_lookups: Counter
    local_evictions: Counter
    local_size: Gauge
    invalidations: Counter
    subscribed: Gauge
    _lookups: dict[tuple[str, str], Counter] = field(default_factory=dict, compare=False)

    def observe(self, cache: str, outcome: str) -> None:
        self.requests.labels(cache=cache, outcome=outcome).inc()

    def local_lookup(self, cache: str, outcome: str) -> None:
        """On every cached read: the child is looked up once and kept, as ``HttpMetrics`` does (a third of the
        count's cost otherwise)."""
        child = self._lookups.get((cache, outcome))
        if child is None:
            child = self._lookups[(cache, outcome)] = self.local_lookups.labels(cache=cache, outcome=outcome)
        child.inc()

    def local_evicted(self, cache: str, reason: str, entries: int = 1) -> None:
        self.local_evictions.labels(cache=cache, reason=reason).inc(entries)

    def local_entries(self, cache: str, entries: int) -> None:
        self.local_size.labels(cache=cache).set(entries)

    def invalidation(self, outcome: str) -> None:
        self.invalidations.labels(outcome=outcome).inc()

    def subscription(self, *, live: bool) -> None:
        self.subscribed.set(1.0 if live else 0.0)


def build_cache_metrics(registry: CollectorRegistry) -> CacheMetrics:
    return CacheMetrics(
        requests=Counter(
            "cache_requests", "Requests to each Redis cache, by outcome.", ["cache", "outcome"], registry=registry
        ),
        local_lookups=Counter(
            "cache_local_lookups",
            "Lookups in each worker's in-process cache, by outcome (hit, miss).",
            ["cache", "outcome"],
            registry=registry,
        ),
        local_evictions=Counter(
            "cache_local_evictions",
            "Entries dropped from each worker's in-process cache, by reason.",
            ["cache", "reason"],
            registry=registry,
        ),
        local_size=Gauge(
            "cache_local_entries",
            "Entries (and invalidation floors) held in the workers' in-process caches.",
            ["cache"],
            registry=registry,
            multiprocess_mode="livesum",
        ),
        invalidations=Counter(
            "cache_invalidations",
            "The cache invalidation channel: messages received, subscriptions made and lost.",
            ["outcome"],
            registry=registry,
        ),
        subscribed=Gauge(
            "cache_invalidation_subscribed",
            "1 while this worker is subscribed to the cache invalidation channel.",
            registry=registry,
            multiprocess_mode="liveall",
        ),
    )


@dataclass(frozen=True)
class RateLimitMetrics:
    """Per-account rate-limit decisions (app/api/rate_limits.py) by policy and outcome: admitted, limited, and, when
    Redis did not answer in time, failed-open or failed-closed. See notes/redis.md, "Rate limits in one round trip"."""

    decisions: Counter

    def count(self, policy: str, outcome: str) -> None:
        self.decisions.labels(policy=policy, outcome=outcome).inc()


def build_rate_limit_metrics(registry: CollectorRegistry) -> RateLimitMetrics:
    return RateLimitMetrics(
        decisions=Counter(
            "rate_limit_decisions",
            "Per-account rate-limit decisions, by outcome.",
            ["policy", "outcome"],
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class SearchMetrics:
    """Event searches by the backend that answered (elasticsearch, postgres) and why that one (chosen, absent: no
    Elasticsearch configured, breaker-open, failed: it erred or ran out of its budget, cursor: the page's cursor
    names PostgreSQL). The Elasticsearch breaker's state is ``circuit_breaker_state{breaker="elasticsearch"}``.
    See notes/elasticsearch.md, "Breaker and budget"."""

    requests: Counter

    def answered(self, backend: str, reason: str) -> None:
        self.requests.labels(backend=backend, reason=reason).inc()


def build_search_metrics(registry: CollectorRegistry) -> SearchMetrics:
    return SearchMetrics(
        requests=Counter(
            "search_requests",
            "Event searches by the backend that answered and why.",
            ["backend", "reason"],
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class AppMetrics:
    """Every metric family the app exports, built once per app on its own registry (so tests can build many)."""

    http: HttpMetrics
    replica: ReplicaMetrics
    breaker: BreakerMetrics
    reconciler: ReconcilerMetrics
    jobs: JobMetrics
    cache: CacheMetrics
    rate_limits: RateLimitMetrics
    outbox: OutboxMetrics
    search: SearchMetrics

    @classmethod
    def on(cls, registry: CollectorRegistry) -> AppMetrics:
        return cls(
            http=build_http_metrics(registry),
            replica=build_replica_metrics(registry),
            breaker=build_breaker_metrics(registry),
            reconciler=build_reconciler_metrics(registry),
            jobs=build_job_metrics(registry),
            cache=build_cache_metrics(registry),
            rate_limits=build_rate_limit_metrics(registry),
            outbox=build_outbox_metrics(registry),
            search=build_search_metrics(registry),
        )


def exposition_registry(registry: CollectorRegistry) -> CollectorRegistry:
    """What ``/metrics`` renders: the app's own registry, or the sum of every worker's files when multiprocess."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return registry
    summed = CollectorRegistry()
    multiprocess.MultiProcessCollector(summed, path=directory)  # type: ignore[no-untyped-call]
    return summed
