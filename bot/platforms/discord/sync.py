"""Registering the slash commands with Discord at start-up.

With `DISCORD_GUILD_IDS` the commands are synced to those guilds (instant, every start).
Otherwise they are global, and synced only when they differ from what Discord has: global
syncs are rate-limited and take a while to reach every client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import discord
from discord import app_commands

log = logging.getLogger(__name__)

# The fields that define a command; Discord adds ids, versions and defaults to its copy.
COMPARED_FIELDS = (
    "name",
    "description",
    "type",
    "options",
    "required",
    "choices",
    "value",
    "min_value",
    "max_value",
    "min_length",
    "max_length",
    "channel_types",
    "autocomplete",
    "default_member_permissions",
    "contexts",
    "integration_types",
    "nsfw",
)


def normalized(value: Any) -> Any:
    """A command payload reduced to what defines it, with defaults and number types evened out."""
    if isinstance(value, dict):
        kept = {k: normalized(value[k]) for k in COMPARED_FIELDS if k in value}
        if kept.get("default_member_permissions") is not None:  # Discord sends digits as text
            kept["default_member_permissions"] = float(kept["default_member_permissions"])
        return {k: v for k, v in kept.items() if v not in (None, False, [], {}, "")}
    if isinstance(value, list):
        return [normalized(item) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def same_commands(local: Iterable[dict[str, Any]], remote: Iterable[dict[str, Any]]) -> bool:
    """True when Discord already has exactly these commands (the order of commands aside)."""

    def keyed(commands: Iterable[dict[str, Any]]) -> dict[str, Any]:
        return {str(c.get("name")): normalized(c) for c in commands}

    return keyed(local) == keyed(remote)


async def sync_commands(
    client: discord.Client, tree: app_commands.CommandTree[Any], guild_ids: tuple[int, ...]
) -> None:
    """Register the tree's commands: to `guild_ids` when given, else globally when changed."""
    if guild_ids:
        for guild_id in guild_ids:
            guild = discord.Object(guild_id)
            tree.copy_global_to(guild=guild)
            try:
                synced = await tree.sync(guild=guild)
            except discord.Forbidden:
                log.error(
                    "cannot register commands in server %s: invite the bot with the "
                    "'applications.commands' scope (see the README, section Discord)",
                    guild_id,
                )
                continue
            log.info("synced %d command(s) to server %s", len(synced), guild_id)
        return
    assert client.application_id is not None  # set by login()
    remote = await client.http.get_global_commands(client.application_id)
    local = [command.to_dict(tree) for command in tree.get_commands()]
    if same_commands(local, remote):  # type: ignore[arg-type]
        log.info("global commands are up to date; not syncing")
        return
    synced = await tree.sync()
    log.info(
        "synced %d global command(s); Discord may take up to an hour to show changes "
        "everywhere (set DISCORD_GUILD_IDS for instant updates while testing)",
        len(synced),
    )
