"""The password policy is a pure rule with a reason per refusal. See notes/security.md, "Passwords"."""

from __future__ import annotations

from app.security.passwords import PasswordHasher, password_problems


def test_acceptable_password_has_no_problems() -> None:
    assert password_problems("correct horse battery", "ann@example.com") == []


def test_each_refusal_says_why() -> None:
    assert password_problems("short", "ann@example.com") == ["must be at least 10 characters"]
    assert "must not contain the email's name" in password_problems("annannann-2026", "ann@example.com")
    assert "must not repeat so few characters" in password_problems("aaaaaaaaaaaa", "bob@example.com")


def test_breached_stems_and_keyboard_runs_are_refused_with_a_reason() -> None:
    for weak in ("Password2024!", "qwerty123456", "letmein!!2026", "my123456789pin", "zxcvbnm-tree"):
        assert "must not be built on a common breached password or a keyboard sequence" in password_problems(
            weak, "ann@example.com"
        ), weak
    assert password_problems("correct horse battery staple", "ann@example.com") == []


def test_verify_with_no_user_still_does_the_work_and_fails() -> None:
    hasher = PasswordHasher()
    stored = hasher.hash("correct horse battery")
    assert hasher.verify("correct horse battery", stored).ok
    assert not hasher.verify("wrong horse battery", stored).ok
    assert not hasher.verify("correct horse battery", None).ok
