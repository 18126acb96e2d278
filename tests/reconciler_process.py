"""One leased payment-reconciler round in a process of its own, as one app worker runs it: ``python -m
tests.reconciler_process '<json>'``.

Why a process: the lease test stops a holder with SIGSTOP, the way a GC pause or a frozen VM stops one, and only a
process can be stopped so (its lease renewal stops with it). With ``"pause": true`` the round stops itself right
after its first provider lookup, before it writes the answer: it prints ``PAUSED`` and sends itself SIGSTOP, so
the test knows exactly where the holder is when it resumes it. The round's report is the last line, ``REPORT
<json>``. See notes/redis.md, "A lease with fencing tokens".
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import create_async_engine

from app.cache.client import open_redis
from app.cache.lease import RedisLease
from app.observability.metrics import build_reconciler_metrics
from app.payments.client import PaymentsClient, open_payments_client
from app.payments.outcomes import ChargeResult
from app.payments.wire import ProviderCharge
from app.services.reconciler import LeasedReconciler, PaymentReconciler
from app.services.unit_of_work import TransactionTimeouts, UnitOfWorkFactory
from app.settings import Settings

TIMEOUTS = TransactionTimeouts(lock_ms=500, statement_ms=4000)  # as the test stack's app runs them


class StopsAfterFirstLookup:
    """The real payments client; after its first lookup this process stops itself until it is sent SIGCONT."""

    def __init__(self, payments: PaymentsClient) -> None:
        self._payments = payments
        self._stopped = False

    async def charge(
        self, *, amount_cents: int, currency: str, card_token: str, idempotency_key: str, description: str | None
    ) -> ChargeResult:
        return await self._payments.charge(
            amount_cents=amount_cents,
            currency=currency,
            card_token=card_token,
            idempotency_key=idempotency_key,
            description=description,
        )

    async def find_charge(self, idempotency_key: str) -> ProviderCharge | None:
        found = await self._payments.find_charge(idempotency_key)
        if not self._stopped:
            self._stopped = True
            print("PAUSED", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
        return found


async def one_round(config: dict[str, Any]) -> dict[str, Any]:
    settings = Settings(
        redis_url=config["redis_url"],
        payments_url=config["payments_url"],
        payments_timeout_s=0.5,
        payments_deadline_s=2.0,
    )
    engine = create_async_engine(config["database_url"], pool_size=2, max_overflow=0)
    redis = open_redis(settings)
    payments = open_payments_client(settings)
    registry = CollectorRegistry()
    metrics = build_reconciler_metrics(registry)
    try:
        reconciler = PaymentReconciler(
            UnitOfWorkFactory(engine, TIMEOUTS),
            StopsAfterFirstLookup(payments) if config["pause"] else payments,
            grace_s=config["grace_s"],
            batch=1000,
            metrics=metrics,
        )
        lease = RedisLease(redis, config["lease"], ttl_ms=config["ttl_ms"])
        report = await LeasedReconciler(reconciler, lease, metrics).run_round()
    finally:
        await payments.aclose()
        await redis.aclose()
        await engine.dispose()
    return {
        "round": report.round.value,
        "token": report.token,
        "settled": {outcome.value: count for outcome, count in report.settled.items()},
        "rounds_counted": registry.get_sample_value("payment_reconciler_rounds_total", {"outcome": report.round}),
    }


if __name__ == "__main__":
    print("REPORT " + json.dumps(asyncio.run(one_round(json.loads(sys.argv[1])))), flush=True)
