"""Errors every repository raises; their messages name the missing row."""

from __future__ import annotations


class NotFound(LookupError):
    """The requested row does not exist."""
