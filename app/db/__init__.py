"""PostgreSQL access: engines for the primary and the replica, the declarative base, later the repositories.

See notes/postgres.md and notes/db_scaling.md.
"""
