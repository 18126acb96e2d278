"""Runnable labs for what has no home in the product: each prints a table and is proved by tests under tests/lab.

Labs import nothing from app/, and app/ imports nothing from them. The CPython lab is explained in notes/python.md,
the container lab in notes/docker.md.
"""
