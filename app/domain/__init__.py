"""Pure ticketing rules: seat states, hold expiry and seat requests, money in integer cents. No IO here.

Why a floor of its own: these rules decide what may happen to a seat or a hold, and they are tested in
milliseconds without a database. The database enforces the same rules with constraints and conditional updates
(see notes/postgres.md, "Contention"); this package says them once in code.
"""
