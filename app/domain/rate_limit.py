"""GCRA, the generic cell rate algorithm: a per-account rate limit kept as one number, the theoretical arrival time.

Why GCRA: it behaves like a token bucket of ``quota`` tokens refilled at ``quota / window`` (a burst of ``quota``,
then one request per emission interval), yet it stores a single timestamp (the TAT: when the bucket would be full
again) instead of a count and a refill time, so the Redis script reads one key and writes one key with a TTL that
ends exactly when the state stops mattering. This module is the algorithm in pure integer milliseconds, tested
without Redis; app/cache/rate_limiter.py runs the same steps as a Lua script, atomically, in one round trip.
See notes/redis.md, "Rate limits in one round trip".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RatePolicy:
    """``quota`` requests per ``window_s`` seconds, at most ``quota`` of them back to back."""

    name: str
    quota: int
    window_s: int

    def __post_init__(self) -> None:
        if self.quota < 1 or self.window_s < 1 or self.window_s * 1000 < self.quota:
            raise ValueError(f"a rate policy needs 1 <= quota <= window in ms, got {self.quota}/{self.window_s} s")

    @property
    def interval_ms(self) -> int:
        """The emission interval: one request's worth of time (rounded down to a whole millisecond)."""
        return self.window_s * 1000 // self.quota


@dataclass(frozen=True)
class Verdict:
    """One request's answer: allowed or not, what is left, and when to come back."""

    allowed: bool
    remaining: int
    retry_after_ms: int  # 0 when allowed; else until one request fits again
    reset_ms: int  # until the whole quota is available again


def gcra(policy: RatePolicy, tat_ms: int | None, now_ms: int) -> tuple[Verdict, int | None]:
    """Decide one request at ``now_ms`` given the stored TAT (``None``: no state, a full quota). Returns the verdict
    and the TAT to store, ``None`` when refused (a refused request changes nothing)."""
    interval = policy.interval_ms
    tat = max(tat_ms if tat_ms is not None else now_ms, now_ms)
    new_tat = tat + interval
    allow_at = new_tat - interval * policy.quota
    if now_ms < allow_at:
        return Verdict(allowed=False, remaining=0, retry_after_ms=allow_at - now_ms, reset_ms=tat - now_ms), None
    remaining = (now_ms - allow_at) // interval
    return Verdict(allowed=True, remaining=remaining, retry_after_ms=0, reset_ms=new_tat - now_ms), new_tat
