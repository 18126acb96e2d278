"""The HTTP edge: routers, schemas, problem details and the dependencies routes declare.

Resources live under ``/api/v1``; health and metrics sit at the root. See notes/fastapi.md
("Problem details").
"""
