"""The OWASP API Security Top 10 (2023) as attacks on the running service, one module per risk.

See notes/security.md, "The OWASP API Top 10 matrix".
"""
