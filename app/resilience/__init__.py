"""Resilience shared by every outbound client: retry policies and circuit breakers.

See notes/fault_tolerance.md, "Retries" and "Circuit breaker".
"""
