"""`/admin review next` and `/admin review stats`: the blind side-by-side review of two model
versions, for the bot's owners.

`next` shows one prompt and two versions' outputs as A and B, without their names, under three
buttons: "A is better", "Tie", "B is better". A press is a component interaction; it is checked
again (owners only) and audited like every `/admin` command, stores the verdict and reveals
which version was which, with a "Next pair" button (the same pair again). The buttons are
`DynamicItem`s whose `custom_id` carries the item and the choice, so they keep working after
a restart and never time out. Answers are ephemeral: recent prompts come from every server.
The same buttons serve a server line's own review (`/admin line review`, bot/platforms/discord/
line_commands.py): their `custom_id` says `line-review`, and a press goes to `line review`
in the server it was pressed in (its admins, once the owners enabled its line).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Self

import discord
from discord import app_commands

from bot.admin_commands import AdminReply
from bot.platforms.discord.admin_commands import AdminCommands, actor_of
from bot.platforms.discord.admin_render import ButtonsReply
from bot.platforms.discord.jobs import describe_error

log = logging.getLogger(__name__)

CUSTOM_ID = r"gpt2bot:(?P<kind>review|line-review):(?P<item>[0-9]+):(?P<choice>a|b|tie|next)"
LINE = "line-review"  # the buttons of a server line's own review
BUTTONS = {  # choice: (label, style)
    "a": ("A is better", discord.ButtonStyle.primary),
    "tie": ("Tie", discord.ButtonStyle.secondary),
    "b": ("B is better", discord.ButtonStyle.primary),
    "next": ("Next pair", discord.ButtonStyle.secondary),
}
VersionName = app_commands.Range[str, 1, 64]


class ReviewCommands:
    """The review group's buttons, over the shared `review next` and `review vote`."""

    def __init__(self, admin: AdminCommands) -> None:
        self.admin = admin
        self.button = _button_type(self)

    def view_of(self, reply: AdminReply, kind: str = "review") -> discord.ui.View | None:
        """The buttons the renderer asked for under `reply` (a blind pair, a reveal)."""
        if not isinstance(reply, ButtonsReply):
            return None
        view = discord.ui.View(timeout=None)
        for choice in reply.choices:
            view.add_item(self.button(reply.item_id, choice, kind))
        return view

    def line_view_of(self, reply: AdminReply) -> discord.ui.View | None:
        """The buttons of a server line's own review."""
        return self.view_of(reply, LINE)

    async def pressed(
        self, interaction: discord.Interaction, item_id: int, choice: str, kind: str = "review"
    ) -> None:
        """A button: a verdict (then the reveal) or the next pair (a new answer)."""
        words, options = _route(kind, item_id, choice)
        detail = {"id": item_id, "choice": choice}
        view_of = self.line_view_of if kind == LINE else self.view_of
        if choice == "next":
            await self.admin.run(interaction, words, options, detail, view_of)
            return
        await interaction.response.defer()  # the answer edits the message the button is on
        actor = actor_of(interaction)
        reply = await self.admin.commands.call(actor, words, options, detail=detail)
        view = view_of(reply)
        if view is None:  # refused, or the vote could not be recorded: said to the presser only
            await interaction.followup.send(reply.text, ephemeral=True)
            return
        await interaction.edit_original_response(content=reply.text, view=view)


def _route(kind: str, item_id: int, choice: str) -> tuple[str, dict[str, Any]]:
    """The command a press runs, and its options: the owners' review, or a line's own."""
    if kind == LINE:
        if choice == "next":
            return "line review", {"action": "next", "same_pair_as": item_id}
        return "line review", {"action": "vote", "id": item_id, "choice": choice}
    if choice == "next":
        return "review next", {"same_pair_as": item_id}
    return "review vote", {"id": item_id, "choice": choice}


class ReviewButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CUSTOM_ID):
    """A verdict ("a", "tie", "b") or "next" button of review item `item_id` (`kind`:
    "review", or "line-review" for a server line's own review)."""

    def __init__(self, item_id: int, choice: str, kind: str = "review") -> None:
        label, style = BUTTONS[choice]
        custom_id = f"gpt2bot:{kind}:{item_id}:{choice}"
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=custom_id))
        self.item_id, self.choice, self.kind = item_id, choice, kind

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: Any, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["item"]), match["choice"], match["kind"])


def _button_type(commands: ReviewCommands) -> type[ReviewButton]:
    """The buttons' class that answers presses with `commands` (one per platform)."""

    class BoundReviewButton(ReviewButton, template=CUSTOM_ID):
        async def callback(self, interaction: discord.Interaction) -> None:
            try:
                await commands.pressed(interaction, self.item_id, self.choice, self.kind)
            except Exception as error:
                text = describe_error(error, "review button")
                await interaction.followup.send(text, ephemeral=True)

    return BoundReviewButton


def add_review_commands(
    parent: app_commands.Group, admin: AdminCommands, client: discord.Client
) -> ReviewCommands:
    """`/admin review ...` under `parent`, and its buttons registered with `client`."""
    commands = ReviewCommands(admin)
    client.add_dynamic_items(commands.button)
    review = app_commands.Group(
        name="review", description="blind side-by-side review of model versions", parent=parent
    )

    @review.command(name="next")
    @app_commands.describe(
        version_a="a version to compare (default: the active one)",
        version_b="the other (default: the A/B candidate, else the newest version)",
    )
    async def next_(
        interaction: discord.Interaction,
        version_a: VersionName | None = None,
        version_b: VersionName | None = None,
    ) -> None:
        """Two versions' outputs for one prompt, unnamed: pick the better one."""
        pair = {"version_a": version_a, "version_b": version_b}
        await admin.run(interaction, "review next", pair, view_of=commands.view_of)

    @review.command(name="stats")
    async def stats(interaction: discord.Interaction) -> None:
        """Win rates per pair of versions from the owners' blind-review verdicts."""
        await admin.run(interaction, "review stats")

    return commands
