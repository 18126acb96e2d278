"""Sharding one table over several PostgreSQL primaries: a consistent-hash ring and the sharded audit log.

See notes/db_scaling.md, "Sharding".
"""
