"""The MRO and C3: a diamond, why ``super()`` must be cooperative, and a hierarchy C3 refuses.

Why it matters: ``super()`` means "the next class in the instance's MRO", not "my parent". A class that calls its
parent by name instead runs a shared base twice in a diamond (a connection opened twice, a counter bumped twice);
one that calls ``super()`` runs every class exactly once, in C3 order: children before parents, and the order of
the bases as written kept. When no order can satisfy both rules, class creation fails. See notes/python.md.
"""

from __future__ import annotations

from lab.table import Table


class Base:
    def __init__(self, calls: list[str]) -> None:
        calls.append("Base")


class LeftByName(Base):
    def __init__(self, calls: list[str]) -> None:
        calls.append("Left")
        Base.__init__(self, calls)


class RightByName(Base):
    def __init__(self, calls: list[str]) -> None:
        calls.append("Right")
        Base.__init__(self, calls)


class DiamondByName(LeftByName, RightByName):
    """The footgun: each side calls ``Base`` by name, so ``Base.__init__`` runs twice."""

    def __init__(self, calls: list[str]) -> None:
        calls.append("Diamond")
        LeftByName.__init__(self, calls)
        RightByName.__init__(self, calls)


class Left(Base):
    def __init__(self, calls: list[str]) -> None:
        calls.append("Left")
        super().__init__(calls)


class Right(Base):
    def __init__(self, calls: list[str]) -> None:
        calls.append("Right")
        super().__init__(calls)


class Diamond(Left, Right):
    """The fix: every ``__init__`` calls ``super()``, so the chain follows the MRO and ``Base`` runs once."""

    def __init__(self, calls: list[str]) -> None:
        calls.append("Diamond")
        super().__init__(calls)


def init_calls(cls: type[DiamondByName] | type[Diamond]) -> list[str]:
    calls: list[str] = []
    cls(calls)
    return calls


def mro_names(cls: type) -> list[str]:
    return [c.__name__ for c in cls.__mro__]


def refused_hierarchy() -> str:
    """``class Refused(Base, Left)``: the bases say Base before Left, inheritance says Left before Base."""
    try:
        type("Refused", (Base, Left), {})
    except TypeError as error:
        return " ".join(str(error).split())  # 3.11 breaks the message over two lines
    return "accepted"


def report() -> list[Table]:
    return [
        Table(
            "a diamond: Diamond(Left, Right), Left(Base), Right(Base)",
            ("what", "result"),
            [
                ("Diamond.__mro__ (C3)", " -> ".join(mro_names(Diamond))),
                ("__init__ calls, parents called by name", " -> ".join(init_calls(DiamondByName))),
                ("__init__ calls, cooperative super()", " -> ".join(init_calls(Diamond))),
                ("class Refused(Base, Left)", refused_hierarchy()),
            ],
        )
    ]
