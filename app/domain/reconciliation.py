"""Reconciliation rules: what to do with a ``paying`` hold once the provider has been asked about its key.

Why pure: "charged → book, not charged → give back, no usable answer → ask again later" is the decision that must
never be wrong, since a wrong one either sells seats somebody paid for or keeps money without a booking; here it is
tested without a database or a provider. Giving back is the same move as after a decline (``paying → active``):
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
