"""CPython's footguns, each measured and shown beside its fix: ``python -m lab.python [topic]``. See notes/python.md.

One module per topic (gil, collector, memory, mro, descriptors, language_traps, task_references); each exposes the
functions the tests call and a ``report()`` that returns the tables the command prints.
"""
