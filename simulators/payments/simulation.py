"""How the payment-provider SIMULATOR answers a charge: programmed faults in front, the idempotent ledger behind.

Why the work runs in its own task: at a real provider the charge goes on when the client gives up (a timeout is
not a cancellation), and that is exactly why clients must retry with the same idempotency key. So each charge
is answered by a task the request only waits for, shielded from the request's cancellation. A reset ends the
current ``Simulation``; hanging requests of that run wake up and answer 503 instead of recording anything.
See notes/fault_tolerance.md, "The payment-provider simulator".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

from fastapi.responses import Response

from simulators.payments.behaviour import Behaviour, Fault, FaultDice
from simulators.payments.ledger import Ledger
from simulators.payments.replies import Reply, garbled, problem
from simulators.payments.schemas import ChargeRequest

logger = logging.getLogger(__name__)

RESET_REPLY = problem(503, "Simulator reset", "The simulator was reset while this request was in flight.")


@dataclasses.dataclass
class Counters:
    """Public counters, so tests assert exact numbers rather than impressions."""

    requests_total: int = 0
    errors_injected: int = 0
    timeouts_injected: int = 0
    replays: int = 0
    lookups: int = 0  # GET /v1/charges?idempotency_key=…, found or not


class Simulation:
    """One run between resets: its fault dice, ledger and counters."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.dice = FaultDice(behaviour)
        self.ledger = Ledger()
        self.counters = Counters()
        self._ended = asyncio.Event()

    def end(self) -> None:
        self._ended.set()

    def stats(self) -> dict[str, int]:
        return {"charges_created": len(self.ledger.charges()), **dataclasses.asdict(self.counters)}

    async def answer_charge(self, idempotency_key: str, request: ChargeRequest, fault: Fault) -> Reply:
        behaviour = self.dice.behaviour
        if not await self._wait(behaviour.latency_ms / 1000):
            return RESET_REPLY
        if (status := fault.error_status) is not None:
            self.counters.errors_injected += 1
            logger.info("injected %d for idempotency key %s", status, idempotency_key)
            return problem(status, "Injected failure", "The simulator was told to fail this request.")
        async with self.ledger.lock_for(idempotency_key):
            earlier = self.ledger.first_answer(idempotency_key)
            if fault is Fault.TIMEOUT:
                self.counters.timeouts_injected += 1
                logger.info("hanging %.3fs for idempotency key %s", behaviour.hang_s, idempotency_key)
                if not await self._wait(behaviour.hang_s):
                    return RESET_REPLY
            if earlier is None:
                return self.ledger.record(
                    idempotency_key, request, declined=request.card_token in behaviour.declined_cards
                )
            if earlier.request != request:
                return problem(409, "Idempotency key reused", "This key was first used with a different body.")
            self.counters.replays += 1
            return earlier.reply.replayed()

    async def _wait(self, seconds: float) -> bool:
        """Pass simulated time; False when the run was reset meanwhile."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._ended.wait()
        return not self._ended.is_set()


class PaymentSimulator:
    """The simulator behind the HTTP routes: the current run, reprogrammed or reset by the control API."""

    def __init__(self) -> None:
        self.run = Simulation(Behaviour())
        self._answering: set[asyncio.Task[Reply]] = set()

    def program(self, behaviour: Behaviour) -> None:
        self.run.dice = FaultDice(behaviour)

    def reset(self) -> None:
        self.run.end()
        self.run = Simulation(Behaviour())

    async def charge(self, idempotency_key: str | None, request: ChargeRequest) -> Response:
        """The HTTP answer to one charge request: the ledger's reply, garbled on the way out if so programmed."""
        run = self.run
        run.counters.requests_total += 1
        if not idempotency_key:
            missing = problem(400, "Idempotency-Key required", "Send an Idempotency-Key header with every charge.")
            return missing.to_response()
        fault = run.dice.roll()
        answering = asyncio.create_task(run.answer_charge(idempotency_key, request, fault))
        self._answering.add(answering)
        answering.add_done_callback(self._answering.discard)
        reply = await asyncio.shield(answering)
        behaviour = run.dice.behaviour
        if behaviour.garble != "none" and reply.status in (201, 402):
            return garbled(reply, behaviour.garble, behaviour.huge_reply_bytes)
        return reply.to_response()
