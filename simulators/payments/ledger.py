"""The payment-provider SIMULATOR's books: recorded charges and the first answer given for each idempotency key.

Why a lock per key: answering a key means "look the key up, authorise, record"; if two requests with the same key
interleave between the look-up and the record, the card is charged twice. Holding an ``asyncio.Lock`` per key
around that sequence makes concurrent duplicates wait and then get the replay. See notes/fault_tolerance.md,
"The payment-provider simulator".
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from datetime import UTC, datetime

from simulators.payments.replies import Reply
from simulators.payments.schemas import Charge, ChargeRequest


@dataclasses.dataclass(frozen=True)
class FirstAnswer:
    """What a key was first used for and what it got; later uses replay it or conflict with it."""

    request: ChargeRequest
    reply: Reply


class Ledger:
    """Charges in the order they were recorded, and the first answer per idempotency key."""

    def __init__(self) -> None:
        self._charges: dict[str, Charge] = {}
        self._answers: dict[str, FirstAnswer] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock_for(self, idempotency_key: str) -> asyncio.Lock:
        return self._locks.setdefault(idempotency_key, asyncio.Lock())

    def first_answer(self, idempotency_key: str) -> FirstAnswer | None:
        return self._answers.get(idempotency_key)

    def charge(self, charge_id: str) -> Charge | None:
        return self._charges.get(charge_id)

    def charge_for_key(self, idempotency_key: str) -> Charge | None:
        """The charge recorded under the key (declined ones too); None while none is, even mid-request."""
        first = self._answers.get(idempotency_key)
        return None if first is None else self._charges.get(str(first.reply.body["id"]))

    def charges(self) -> list[Charge]:
        return list(self._charges.values())

    def record(self, idempotency_key: str, request: ChargeRequest, *, declined: bool) -> Reply:
        """Record a new charge under the key (call while holding ``lock_for(key)``) and return its answer."""
        charge = Charge(
            id=f"ch_{secrets.token_hex(12)}",
            status="declined" if declined else "succeeded",
            amount_cents=request.amount_cents,
            currency=request.currency,
            created_at=datetime.now(UTC),
            description=request.description,
            decline_code="card_declined" if declined else None,
            idempotency_key=idempotency_key,
        )
        self._charges[charge.id] = charge
        reply = Reply(402 if declined else 201, charge.public_view())
        self._answers[idempotency_key] = FirstAnswer(request, reply)
        return reply
