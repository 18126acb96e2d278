"""What the worker did with each message, per consumer: its own registry, exposed at the worker's ``/metrics``.

Why these outcomes: ``consumed`` counts deliveries received; each then ends as exactly one of ``applied`` (the
effect committed with its inbox row), ``duplicate`` (the inbox already had it: acknowledged, nothing done),
``retried`` (the consumer failed; sent to a retry tier) or ``parked`` (failed on its last tier, or unreadable). So
consumed = applied + duplicate + retried + parked once nothing is in flight, which the tests check.
See notes/rabbitmq.md, "The worker and its inbox".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter

Outcome = Literal["consumed", "applied", "duplicate", "retried", "parked"]


@dataclass(frozen=True)
class WorkerMetrics:
    messages: Counter

    def count(self, consumer: str, outcome: Outcome) -> None:
        self.messages.labels(consumer=consumer, outcome=outcome).inc()


def build_worker_metrics(registry: CollectorRegistry) -> WorkerMetrics:
    return WorkerMetrics(
        messages=Counter(
            "worker_messages",
            "Messages the worker received (consumed) and how each ended, per consumer.",
            ["consumer", "outcome"],
            registry=registry,
        )
    )
