"""What a platform gives the command set and gets back: its `Surface` (how it writes code,
bold and user text, what admins type) and the `AdminReply` (text and charts) it shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def _plain(text: str) -> str:
    return text


def _backticks(text: str) -> str:
    return f"`{text}`"


def _stars(text: str) -> str:
    return f"**{text}**"


def _words(text: str) -> list[str]:
    return [word.lstrip("#") for word in text.split()]


@dataclass(frozen=True)
class Surface:
    """How a platform writes what the command set says (the defaults are Markdown)."""

    command: str = "/admin"  # what admins type before the command words
    server_noun: str = "server"  # what the platform calls a server ("workspace" on Slack)
    code: Callable[[str], str] = _backticks  # a code span in the platform's markup
    bold: Callable[[str], str] = _stars
    escape: Callable[[str], str] = _plain  # user text made safe for the platform's markup
    thumbs_up: str = "👍"  # how the platform writes the 👍 reaction in text
    channel_ids: Callable[[str], list[str]] = _words  # channel ids in `server channels ...`
    audit_prefix: str = ""  # before the words in the audit log's action ("slack " on Slack)

    @property
    def force(self) -> str:
        """Said after a refusal an admin may override (the promotion gate)."""
        how = self.code(f"{self.command} model use VERSION force")
        return f"To promote it anyway, add {self.code('force')}: {how}."

    def example(self, words: str) -> str:
        """A whole command as the admin would type it, as code."""
        return self.code(f"{self.command} {words}")


@dataclass(frozen=True)
class Chart:
    """A PNG image to post with the reply."""

    filename: str
    title: str
    png: bytes


@dataclass(frozen=True)
class AdminReply:
    """What an admin command answers: text for the admin who asked, and charts to post."""

    text: str
    charts: tuple[Chart, ...] = ()
