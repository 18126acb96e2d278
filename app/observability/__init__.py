"""Seeing the running service: JSON logs carrying the request id, Prometheus metrics, one access line a request.

See notes/fastapi.md ("Observability").
"""
