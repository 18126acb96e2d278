"""A circuit breaker for asyncio callers, driven by pybreaker's state machine.

Why a wrapper and not ``pybreaker.CircuitBreaker.call``: pybreaker's ``call`` holds a threading lock for the whole
guarded call and its ``call_async`` needs tornado. An asyncio caller must not block the event loop on a lock, so
this wrapper decides admission itself (closed: go; open: fail fast with the time left; reset window over: let
exactly ONE trial call through per process, the rest fail fast) and, when the awaited call has finished, reports
its outcome to pybreaker with a synchronous ``call``. pybreaker stays the one source of truth for the failure
count, the state transitions, the listeners and the storage. The storage is a local copy of the fields
(app/resilience/shared_circuit.py); given a ``RedisCircuitState``, the breaker refreshes that copy from Redis before
it admits a call and before it reports, and sends pybreaker's writes back, so every worker sees one circuit (and
keeps its own when Redis does not answer). Cancellation is neither a success nor a failure: it says nothing about
the dependency. See notes/fault_tolerance.md, "Circuit breaker", and notes/redis.md, "One breaker for all workers".
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pybreaker

from app.resilience.shared_circuit import MirroredStorage, RedisCircuitState

T = TypeVar("T")


class CircuitOpen(Exception):
    """The call was refused without being tried: the circuit is open, or its one trial call is in flight."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"circuit {name!r} is open; next trial in {retry_after_s:.3f} s")
        self.name = name
        self.retry_after_s = retry_after_s


TransitionWatcher = Callable[[str, str, str], None]
"""Called with ``(breaker name, from state, to state)`` on every transition (e.g. to update metrics)."""


@dataclass(frozen=True)
class BreakerView:
    """What one worker knows of a circuit after an exchange: its state, its failure count, and whether that came
    from the shared state in Redis (``shared``) or is this worker's local breaker."""

    name: str
    state: str
    failures: int
    shared: bool


ViewWatcher = Callable[[BreakerView], None]


class TransitionCounter(pybreaker.CircuitBreakerListener):
    """Counts state changes by ``(from, to)``, e.g. ``("closed", "open")``, and tells any registered watchers."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.watchers: list[TransitionWatcher] = []

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        before = old_state.name if old_state is not None else "none"
        self.counts[(before, new_state.name)] += 1
        for watcher in self.watchers:
            watcher(cb.name or "unnamed", before, new_state.name)

    def into(self, state: str) -> int:
        """How many times the breaker entered ``state`` (``"open"``: how many times it tripped)."""
        return sum(count for (_, to), count in self.counts.items() if to == state)


class _StateMachine(pybreaker.CircuitBreaker):
    """pybreaker's breaker, able to take a state another worker moved the shared storage to as its own."""

    def adopt_stored_state(self) -> None:
        """Without listeners or writes: the worker that made the transition counted it, and pybreaker's noticing
        would reset the failure count (wiping failures other workers counted since) and count it again."""
        if self._state.name != self.current_state:
            self._state = self._create_new_state(self.current_state)


def _succeed() -> None:
    """The outcome reported to pybreaker for a call that worked."""


def _fail(error: Exception) -> None:
    """The outcome reported to pybreaker for a call that failed with ``error``."""
    raise error


class AsyncCircuitBreaker:
    """Guards awaitable calls to one dependency; ``state``, ``transitions`` and ``rejected_calls`` are public."""

    def __init__(
        self,
        *,
        name: str,
        fail_max: int,
        reset_timeout_s: float,
        not_failures: Sequence[type[Exception]] = (),
        shared: RedisCircuitState | None = None,
    ) -> None:
        """``not_failures``: errors that say nothing about the dependency's health (they count as successes).
        ``shared``: where the circuit's state lives for every worker; without it the breaker is this process's."""
        self.name = name
        self.transitions = TransitionCounter()
        self.rejected_calls = 0
        self.shared = False
        self._view_watchers: list[ViewWatcher] = []
        self._shared_state = shared
        self._storage = MirroredStorage(recording=shared is not None)
        self._breaker = _StateMachine(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            exclude=list(not_failures),
            listeners=[self.transitions],
            state_storage=self._storage,
            name=name,
            throw_new_error_on_trip=False,
        )
        self._trial_in_flight = False

    def watch(self, watcher: TransitionWatcher) -> None:
        """Call ``watcher(name, from, to)`` on every state change from now on."""
        self.transitions.watchers.append(watcher)

    def watch_view(self, watcher: ViewWatcher) -> None:
        """Call ``watcher(view)`` after every exchange with the shared state (successful or not) from now on."""
        self._view_watchers.append(watcher)

    def view(self) -> BreakerView:
        return BreakerView(name=self.name, state=self.state, failures=self.fail_counter, shared=self.shared)

    async def refresh(self) -> None:
        """Exchange with the shared state (sending any writes not yet sent); a no-op without one. Never raises."""
        if self._shared_state is None:
            return
        self.shared = await self._shared_state.exchange(self._storage)
        self._breaker.adopt_stored_state()
        for watcher in self._view_watchers:
            watcher(self.view())

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``, as pybreaker's storage says."""
        return self._breaker.current_state

    @property
    def fail_counter(self) -> int:
        """Consecutive failures counted while closed."""
        return self._breaker.fail_counter

    def seconds_until_trial(self) -> float:
        """How long the circuit stays open before a trial call may go through; 0 when closed or due."""
        opened_at = self._storage.opened_at
        if self.state != pybreaker.STATE_OPEN or opened_at is None:
            return 0.0
        reopens_at = opened_at + timedelta(seconds=self._breaker.reset_timeout)
        return max((reopens_at - datetime.now(UTC)).total_seconds(), 0.0)

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Await ``operation()`` if the circuit lets it through; raise ``CircuitOpen`` at once otherwise."""
        await self.refresh()
        trial = self._admit()
        try:
            result = await operation()
        except Exception as error:
            await self._report(_fail, error)
            raise
        else:
            await self._report(_succeed)
            return result
        finally:
            if trial:
                self._trial_in_flight = False

    def _admit(self) -> bool:
        """True for the trial call after the reset window; raises ``CircuitOpen`` to fail fast."""
        if self.state == pybreaker.STATE_CLOSED:
            return False
        wait_s = self.seconds_until_trial()
        if wait_s > 0 or self._trial_in_flight:
            self.rejected_calls += 1
            raise CircuitOpen(self.name, wait_s)
        self._trial_in_flight = True
        return True

    async def _report(self, outcome: Callable[..., None], *args: Exception) -> None:
        """Feed a finished call's outcome through pybreaker, which counts, trips, half-opens or closes, on the
        freshest shared state (refreshed first: the call may have taken seconds), and send its writes back.

        pybreaker re-raises a reported failure, and refuses the report with ``CircuitBreakerError`` when another
        call opened the circuit meanwhile (a late outcome then changes nothing). Both are expected here.
        """
        await self.refresh()
        with contextlib.suppress(pybreaker.CircuitBreakerError, *(type(arg) for arg in args)):
            self._breaker.call(outcome, *args)
        await self.refresh()
