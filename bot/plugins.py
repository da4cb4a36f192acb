"""Plugin discovery through `importlib.metadata` entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

PLATFORM_GROUP = "gpt2bot.platforms"
BACKEND_GROUP = "gpt2bot.backends"
MODERATOR_GROUP = "gpt2bot.moderators"
# our own plugins, for a checkout whose installed metadata predates their entry point
# (pyproject declares them; `pip install -e .` refreshes the metadata)
BUILTIN = {(MODERATOR_GROUP, "default"): "admin.moderation.default:create"}


class PluginNotFound(LookupError):
    pass


def available(group: str) -> list[str]:
    return sorted(ep.name for ep in entry_points(group=group))


def load(group: str, name: str) -> Any:
    """The object an entry point names; `PluginNotFound` says which ones exist."""
    for ep in entry_points(group=group, name=name):
        return ep.load()
    if (group, name) in BUILTIN:
        return EntryPoint(name, BUILTIN[group, name], group).load()
    names = ", ".join(available(group)) or "none"
    raise PluginNotFound(f"no {group} plugin named {name!r} is installed (installed: {names})")
