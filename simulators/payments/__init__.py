"""The payment-provider SIMULATOR: a stand-in for the one external HTTP service refstack calls.

Why: a real provider cannot be made to time out, fail or decline on demand, and a test double inside the client
would never prove the client's timeouts, retries and idempotency keys. This is a separate process with the
provider's wire API plus a ``/_sim/`` control API. See notes/fault_tolerance.md, "The payment-provider simulator".
Run it with ``python -m simulators.payments --port N``.
"""

from simulators.payments.app import create_simulator

__all__ = ["create_simulator"]
