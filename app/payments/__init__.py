"""The client for the external payment provider: idempotent charges, bounded retries, a circuit breaker.

See notes/fault_tolerance.md, "Retries", "Idempotency keys" and "Circuit breaker".
"""
