"""The one error of bad input (its message starts with the path of the field at fault),
and the checks that raise it."""

from __future__ import annotations

from typing import Any, Mapping


class InvalidConfigError(ValueError):
    """Bad input. ``str(e)`` is ``"<field>: <reason>"``; ``e.field`` is the path."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self):  # keep it picklable despite the two-argument constructor
        return (type(self), (self.field, self.reason))


def check(cond: bool, path: str, reason: str) -> None:
    if not cond:
        raise InvalidConfigError(path, reason)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def type_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"
