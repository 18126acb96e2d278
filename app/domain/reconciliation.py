"""Payment-outcome rules: what a ``paying`` hold becomes once the provider has answered a charge (the booking) or
been asked about its key (the reconciler).

Why pure: "charged → book, not charged → give back, no usable answer → ask again later" is the decision that must
never be wrong, since a wrong one either sells seats somebody paid for or keeps money without a booking; here it is
tested without a database or a provider, and app/services/payment_attempts.py acts on it for both callers.
Giving back is the same move as after a decline (``paying → active``):
expiring stays the sweeper's one job, so a hold given back after its expiry is swept on the sweeper's next pass.
See notes/fault_tolerance.md, "Reconciling unknown outcomes".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Settlement(StrEnum):
    BOOK = "book"  # the provider charged under the key: record the booking
    GIVE_BACK = "give-back"  # no charge was made (none, or declined): the seats are not paid for
    ASK_LATER = "ask-later"  # an answer that cannot be acted on: leave the hold ``paying``


class ChargeOutcome(StrEnum):
    """How one charge request ended, as the booking use case saw it."""

    SUCCEEDED = "succeeded"  # the provider charged the card
    DECLINED = "declined"  # the provider refused the card: nothing was charged
    NOT_SENT = "not-sent"  # the breaker refused before any request left: nothing was charged
    REFUSED = "refused"  # the provider refused the request itself (a 4xx): nothing was charged
    UNKNOWN = "unknown"  # requests were sent and none was answered usably: money may have moved


def after_charge(outcome: ChargeOutcome) -> Settlement:
    """The booking's decision: record a charge, give the hold back when nothing was charged, keep it ``paying``
    (for a retry with the same key, or the reconciler) when nobody knows."""
    if outcome is ChargeOutcome.SUCCEEDED:
        return Settlement.BOOK
    if outcome is ChargeOutcome.UNKNOWN:
        return Settlement.ASK_LATER
    return Settlement.GIVE_BACK


@dataclass(frozen=True)
class ChargeFound:
    """What the reconciler needs of the charge the provider found under a hold's key."""

    status: Literal["succeeded", "declined"]
    currency: str


def settle(found: ChargeFound | None, *, currency: str) -> Settlement:
    """The decision for one hold, given the provider's answer (None: "no charge under this key")."""
    if found is None or found.status == "declined":
        return Settlement.GIVE_BACK
    if found.currency.upper() != currency.upper():  # not the charge this hold made: a person must look
        return Settlement.ASK_LATER
    return Settlement.BOOK
