"""``Outbox``: the one way a change appends the messages it owes the broker, inside its own transaction.

Why through the unit of work (``uow.outbox.add(...)``) and never beside it: the row must exist exactly when the
change does. Inserted in the change's transaction, it commits or rolls back with it; a publish after the commit
could be lost to a crash, one before it could announce a change that never happened. The payload is a model
instance of its type's current version (app/messaging/envelope.py), checked here, so a malformed message fails
the writing request instead of a consumer later. Each row carries the ``Cause`` of the request that made it
(request id and W3C traceparent, app/observability/trace_context.py), its aggregate (whose messages keep their
order) and that aggregate's partition, the unit one relay at a time publishes (app/messaging/outbox_relay.py).
Several payloads of one type go in one statement (the sweeper's batch of expired holds is one row per hold, one
round trip). The table's trigger sends ``NOTIFY outbox``, delivered only if this transaction commits. See
notes/rabbitmq.md, "The outbox and its relay".
"""

from __future__ import annotations

import uuid

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import OutboxMessage
from app.messaging.envelope import Payload, aggregate_of, latest_version, payload_model
from app.observability.trace_context import current_cause

PARTITIONS = 16
"""Fixed: every row of one aggregate must land in one partition for as long as any of them is unpublished."""


def partition_of(aggregate_id: uuid.UUID) -> int:
    """The partition of an aggregate (its id's low bits: uuid4s are uniform, so partitions fill evenly)."""
    return aggregate_id.int % PARTITIONS


class Outbox:
    """Appends outbox rows in the session's transaction; made by ``UnitOfWork.outbox``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, message_type: str, *payloads: Payload) -> None:
        """One row per payload, in one statement; each payload must be the current model of ``message_type``."""
        if not payloads:
            return
        version = latest_version(message_type)
        model = payload_model(message_type, version)
        cause = current_cause()
        rows = []
        for payload in payloads:
            if type(payload) is not model:
                raise TypeError(f"{message_type} v{version} takes {model.__name__}, not {type(payload).__name__}")
            aggregate_type, aggregate_id = aggregate_of(message_type, payload)
            rows.append(
                {
                    "type": message_type,
                    "version": version,
                    "aggregate_type": aggregate_type,
                    "aggregate_id": aggregate_id,
                    "partition": partition_of(aggregate_id),
                    "payload": payload.model_dump(mode="json"),
                    "request_id": cause.request_id,
                    "traceparent": cause.traceparent,
                }
            )
        await self._session.execute(insert(OutboxMessage), rows)
