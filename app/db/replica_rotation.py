"""Whether the replica is in rotation: a health gate, deliberately not a circuit breaker.

Two things take the replica out: the health check's periodic sample (unreachable, not a standby, or lagging past
the limits) and a read the replica failed or did not finish in time (``take_out_after_failed_read``, at once, so
the next reads do not wait on it too). Only one thing puts it back: a sample that finds it fit.

Why not the one breaker abstraction (app/resilience/breaker.py), decided on the merits:

- A breaker closes when a trial *call* succeeds. A replica read that succeeds says nothing about lag: a replica
  ten minutes behind answers every read, quickly and wrongly. Only a sample of the LSNs can say it is fit again,
  so the way back in must be the health check, never a user's read.
- A breaker opens by counting call failures. Most reasons the replica is out (lag) are not call failures at all;
  and for the one that is, one failure is enough: a read abandoned after ``replica_read_timeout_s`` proves the
  next would wait as long, so there is nothing to count (a breaker with ``fail_max=1`` and no timer).
- An open breaker refuses the call (``CircuitOpen``); an out-of-rotation replica refuses nothing: the read goes to
  the primary, which is always correct, only busier.
- ``db`` sits below ``resilience`` in the import order, so the router could not use the breaker without an import
  pointing upwards.

The failed-read path is what Nginx calls a passive health check (``max_fails=1``) paired with an active one: it
is named for that here, and it shares the gate rather than growing a second state. See notes/db_scaling.md,
"ReplicaRouter", and notes/fault_tolerance.md, "Circuit breaker".
"""

from __future__ import annotations

from prometheus_client import Gauge

from app.db.replica_routing import Reason


class ReplicaRotation:
    """Why the replica is out of rotation (``out_reason``), or None while reads may go to it; the
    ``db_replica_in_rotation`` gauge follows every change."""

    def __init__(self, *, has_replica: bool, in_rotation: Gauge) -> None:
        """Out until the first sample finds the replica fit (``REPLICA_DOWN``: not checked yet), or for good
        when there is no replica (``NO_REPLICA``)."""
        self._in_rotation = in_rotation
        self.out_reason: Reason | None = Reason.REPLICA_DOWN if has_replica else Reason.NO_REPLICA

    def sampled(self, verdict: Reason | None) -> None:
        """The health check's verdict (``unfit(sample)``): the only way back into rotation."""
        self._set(verdict)

    def take_out_after_failed_read(self) -> None:
        """A read the replica failed or did not finish in time: out at once, until a sample finds it fit."""
        self._set(Reason.REPLICA_DOWN)

    def _set(self, reason: Reason | None) -> None:
        self.out_reason = reason
        self._in_rotation.set(0 if reason else 1)
