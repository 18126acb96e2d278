"""Password hashing with argon2id (pwdlib), verification that rehashes when parameters change, and a dummy hash.

Why argon2id: it is memory-hard, so a GPU farm guessing leaked hashes pays in RAM, not just cycles. Why
``verify_and_update``: when we raise the cost parameters, each user's hash is upgraded at their next login
without a migration. Why a dummy hash: login must spend the same time on an unknown email as on a wrong password,
or response time tells an attacker which emails are registered. See notes/security.md, "Passwords".
"""

from __future__ import annotations

from dataclasses import dataclass

from pwdlib import PasswordHash

MIN_LENGTH = 10
MAX_LENGTH = 128
# The stems that top every published list of breached passwords; a password built on one falls to the first
# minutes of any dictionary attack, whatever digits or symbols surround it. (A production service would also ask
# a breach corpus such as Have I Been Pwned's k-anonymity range API.)
BREACHED_STEMS = frozenset(
    {
        "password",
        "passw0rd",
        "qwerty",
        "letmein",
        "welcome",
        "iloveyou",
        "admin",
        "monkey",
        "dragon",
        "football",
        "baseball",
        "sunshine",
        "princess",
        "trustno1",
        "abc123",
        "starwars",
        "refstack",
    }
)
SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl", "zxcvbnm")


@dataclass(frozen=True)
class Verification:
    ok: bool
    new_hash: str | None  # set when the stored hash used outdated parameters


class PasswordHasher:
    """Built once per process (in the lifespan); hashing is CPU-bound, so callers run it in a thread."""

    def __init__(self) -> None:
        self._hasher = PasswordHash.recommended()
        self._dummy = self._hasher.hash("refstack-dummy-password-for-timing")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password: str, stored_hash: str | None) -> Verification:
        """Always does one full verification, against the dummy hash when there is no user."""
        if stored_hash is None:
            self._hasher.verify(password, self._dummy)
            return Verification(ok=False, new_hash=None)
        ok, new_hash = self._hasher.verify_and_update(password, stored_hash)
        return Verification(ok=ok, new_hash=new_hash if ok else None)


def password_problems(password: str, email: str) -> list[str]:
    """Pure policy: reasons a password is refused (empty list = acceptable)."""
    reasons = []
    if len(password) < MIN_LENGTH:
        reasons.append(f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        reasons.append(f"must be at most {MAX_LENGTH} characters")
    if email and email.split("@")[0].lower() in password.lower():
        reasons.append("must not contain the email's name")
    if len(set(password)) < 4:
        reasons.append("must not repeat so few characters")
    if breached_pattern(password):
        reasons.append("must not be built on a common breached password or a keyboard sequence")
    return reasons


def breached_pattern(password: str) -> bool:
    """True when the password, without digits and symbols at its ends, is a common stem or a long run of a sequence."""
    core = password.lower().strip("0123456789!@#$%^&*()_-+=.?,;: ")
    if core in BREACHED_STEMS or any(stem in core and len(core) - len(stem) <= 3 for stem in BREACHED_STEMS):
        return True
    lowered = password.lower()
    return any(sequence[i : i + 6] in lowered for sequence in SEQUENCES for i in range(len(sequence) - 5))
