"""What the payment-provider SIMULATOR has been told to do wrong, and the dice that pick each request's fault.

Why apart from the HTTP code: the program (``Behaviour``) and the rule that turns it into one ``Fault`` per
charge request are plain data and arithmetic, so they are easy to read and to make reproducible with a seed.
See notes/fault_tolerance.md, "The payment-provider simulator".
"""

from __future__ import annotations

import enum
import random
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Behaviour(BaseModel):
    """The simulator's program, replaced as a whole by ``PUT /_sim/behaviour`` (omitted fields take defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    latency_ms: int = Field(default=0, ge=0, le=600_000, description="Added before answering every charge.")
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Share answered 500/503, nothing charged.")
    timeout_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Share that hang, then charge anyway.")
    hang_s: float = Field(default=30.0, gt=0.0, le=3600.0, description="How long a timed-out request hangs.")
    declined_cards: list[str] = Field(default_factory=list, description="Card tokens answered 402.")
    fail_next: int = Field(default=0, ge=0, description="The next N charge requests fail 503, deterministically.")
    seed: int | None = Field(default=None, description="Makes the error and timeout draws reproducible.")
    garble: Literal["none", "not_json", "wrong_schema", "huge"] = Field(
        default="none",
        description="Charge as usual, but answer 201/402 with a broken body: not JSON, JSON of another shape, or a"
        " charge padded to huge_reply_bytes. A replay after the garbling stops gets the real answer.",
    )
    huge_reply_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=100 * 1024 * 1024)

    @model_validator(mode="after")
    def _rates_share_one_draw(self) -> Self:
        if self.error_rate + self.timeout_rate > 1.0:
            raise ValueError("error_rate + timeout_rate must not exceed 1")
        return self


class Fault(enum.Enum):
    """What goes wrong with one charge request; errors carry the HTTP status they answer with."""

    NONE = "none"
    INTERNAL_ERROR = "internal_error"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"

    @property
    def error_status(self) -> int | None:
        return {Fault.INTERNAL_ERROR: 500, Fault.UNAVAILABLE: 503}.get(self)


class FaultDice:
    """Rolls one ``Fault`` per charge request: first the ``fail_next`` budget, then one seeded draw."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        # Reproducible chaos, not security: a seeded Mersenne Twister is exactly what is wanted here.
        self._rng = random.Random(behaviour.seed)  # noqa: S311
        self._failures_left = behaviour.fail_next

    def roll(self) -> Fault:
        if self._failures_left > 0:
            self._failures_left -= 1
            return Fault.UNAVAILABLE
        draw = self._rng.random()
        if draw < self.behaviour.error_rate:
            return Fault.UNAVAILABLE if self._rng.random() < 0.5 else Fault.INTERNAL_ERROR
        if draw < self.behaviour.error_rate + self.behaviour.timeout_rate:
            return Fault.TIMEOUT
        return Fault.NONE

    def programmed(self) -> Behaviour:
        """The behaviour as programmed, with ``fail_next`` showing the failures still to come."""
        return self.behaviour.model_copy(update={"fail_next": self._failures_left})
