"""The reconciler's pure decision and the settings check on its grace period.

The claims: only a succeeded charge in our currency books; no charge and a declined charge both give the hold back;
a charge that cannot be this hold's is left for a person; and a grace period that does not outlast a whole payment
attempt (deadline, claim and record) refuses to boot. See notes/fault_tolerance.md, "Reconciling unknown outcomes".
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.domain.reconciliation import ChargeFound, Settlement, settle
from app.settings import Settings


def test_a_succeeded_charge_in_our_currency_is_booked() -> None:
    assert settle(ChargeFound(status="succeeded", currency="eur"), currency="EUR") is Settlement.BOOK


@pytest.mark.parametrize("found", [None, ChargeFound(status="declined", currency="EUR")])
def test_no_charge_or_a_declined_one_gives_the_hold_back(found: ChargeFound | None) -> None:
    assert settle(found, currency="EUR") is Settlement.GIVE_BACK


def test_a_succeeded_charge_in_another_currency_is_left_for_a_person() -> None:
    assert settle(ChargeFound(status="succeeded", currency="USD"), currency="EUR") is Settlement.ASK_LATER


def test_the_default_grace_period_outlasts_a_whole_payment_attempt() -> None:
    defaults = Settings()
    attempt_s = defaults.payments_deadline_s + 2 * defaults.db_command_timeout_s
    assert defaults.reconciler_grace_s > attempt_s
    assert (defaults.reconciler_enabled, defaults.reconciler_grace_s) == (True, 60.0)


@pytest.mark.parametrize("grace_s", [4.0, 14.0])
def test_a_grace_period_within_a_payment_attempt_refuses_to_boot(grace_s: float) -> None:
    """4 s is the payments deadline alone; 14 s is deadline + claim + record exactly (must be strictly more)."""
    with pytest.raises(ValidationError, match="RECONCILER_GRACE_S"):
        Settings(reconciler_grace_s=grace_s)


def test_a_grace_period_just_past_a_payment_attempt_boots() -> None:
    assert Settings(reconciler_grace_s=14.0, payments_deadline_s=3.9).reconciler_grace_s == 14.0
