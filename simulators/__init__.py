"""Simulators of refstack's external services: separate tiny apps whose failures tests program at run time.

Why a package of its own: these are SIMULATORS, not product code. They stand in for services we cannot run
locally (a payment provider), import nothing from ``app/`` or ``stack/``, and ``app/`` imports nothing from them.
See notes/fault_tolerance.md, "The payment-provider simulator".
"""
