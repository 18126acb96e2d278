"""What a consumer of domain messages is, as the worker sees it: a queue, its routing keys, and one ``apply``.

Why so small: the worker owns everything that makes a message take effect exactly once — the inbox row, the
transaction, the ack, the retry tiers, the parking lot, the log context — and a consumer owns only its effect. The
worker opens one unit of work on the primary, inserts the inbox row (consumer, message id) and calls ``apply`` only
when that row is new, then commits and acks; so ``apply`` writes its effect through ``uow`` and never commits.
An exception from ``apply`` rolls the whole transaction back (inbox row included) and sends the message to the next
retry tier. ``uow`` is typed by what a consumer may use of it (its session), because messaging sits below services
in the import floors: the worker passes the one ``UnitOfWork`` of app/services/unit_of_work.py.
See notes/rabbitmq.md, "The worker and its inbox".
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.messaging.envelope import Envelope


class UnitOfWork(Protocol):
    """The part of app/services/unit_of_work.py's ``UnitOfWork`` a consumer uses: the open transaction's session."""

    @property
    def session(self) -> AsyncSession: ...


class Consumer(Protocol):
    """One consumer: ``queue`` names its queue (app/messaging/topology.py binds it with ``routing_keys``)."""

    @property
    def queue(self) -> str: ...

    @property
    def routing_keys(self) -> tuple[str, ...]: ...

    async def apply(self, message: Envelope, uow: UnitOfWork) -> None: ...
