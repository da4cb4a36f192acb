"""Errors every repository raises; their messages name the missing row."""

from __future__ import annotations


class NotFound(LookupError):
    """The requested row does not exist."""


class InUse(ValueError):
    """The row cannot go: something else needs it (`dependents` names what, if rows do)."""

    def __init__(self, message: str, dependents: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.dependents = dependents
