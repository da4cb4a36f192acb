"""`/admin review next` and `/admin review stats`: the blind side-by-side review of two model
versions, for the bot's owners.

`next` shows one prompt and two versions' outputs as A and B, without their names, under three
buttons: "A is better", "Tie", "B is better". A press is a component interaction; it is checked
again (owners only) and audited like every `/admin` command, stores the verdict and reveals
which version was which, with a "Next pair" button (the same pair again). The buttons are
`DynamicItem`s whose `custom_id` carries the item and the choice, so they keep working after
a restart and never time out. Answers are ephemeral: recent prompts come from every server.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Self

import discord
from discord import app_commands
from discord.utils import escape_markdown

from admin.auth import Actor, NotAuthorized
from admin.base import AdminServices
from admin.errors import AdminError
from admin.results import BlindPair
from bot.platforms.discord.admin_commands import AdminCommands, Reply, actor_of
from bot.platforms.discord.jobs import describe_error
from model.backends.base import BackendError
from storage import PairWinRate, ReviewItemRecord

log = logging.getLogger(__name__)

CUSTOM_ID = r"gpt2bot:review:(?P<item>[0-9]+):(?P<choice>a|b|tie|next)"
PROMPT_CHARS = 500  # one message holds the prompt and both outputs (Discord: 2,000)
OUTPUT_CHARS = 600
BUTTONS = {  # choice: (label, style)
    "a": ("A is better", discord.ButtonStyle.primary),
    "tie": ("Tie", discord.ButtonStyle.secondary),
    "b": ("B is better", discord.ButtonStyle.primary),
    "next": ("Next pair", discord.ButtonStyle.secondary),
}
SOURCES = {"fixed": "a fixed evaluation prompt", "recent": "a member's recent prompt"}
VersionName = app_commands.Range[str, 1, 64]


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quote(text: str, limit: int) -> str:
    body = escape_markdown(_clip(text, limit)) or "*(nothing: the model ended the text here)*"
    return "\n".join(f"> {line}" for line in body.splitlines() or [""])


def pair_text(item: BlindPair | ReviewItemRecord) -> str:
    """The item as shown before the verdict: no version names."""
    return "\n".join(
        [
            f"**Blind review #{item.id}**: which output is better? "
            f"({SOURCES.get(item.source, item.source)}; same seed and settings for both)",
            f"**Prompt:** {escape_markdown(_clip(item.prompt, PROMPT_CHARS))}",
            "**A**",
            _quote(item.output_a, OUTPUT_CHARS),
            "**B**",
            _quote(item.output_b, OUTPUT_CHARS),
        ]
    )


def revealed_text(item: ReviewItemRecord) -> str:
    sides = f"A was `{item.version_a}`, B was `{item.version_b}`"
    verdict = "you called it a tie" if item.winner is None else f"you preferred `{item.winner}`"
    return f"{pair_text(item)}\n\n✅ {sides}: {verdict}."


def win_rates_text(rates: list[PairWinRate]) -> str:
    if not rates:
        return "No blind-review verdicts yet. `/admin review next` shows a pair to judge."
    lines = ["**Blind review win rates** (a tie counts half a win for each)"]
    for r in rates:
        lines.append(
            f"`{r.first}` vs `{r.second}`: {r.judged} judged · `{r.first}` {r.first_wins} "
            f"won ({r.first_rate:.0%}) · `{r.second}` {r.second_wins} won ({r.second_rate:.0%})"
            f" · {r.ties} tied"
        )
    return "\n".join(lines)


class ReviewCommands:
    """The review group and its buttons, over the `/admin` commands' services and gate."""

    def __init__(self, admin: AdminCommands) -> None:
        self.admin = admin
        self.button = _button_type(self)

    def view(self, item_id: int, *choices: str) -> discord.ui.View:
        view = discord.ui.View(timeout=None)
        for choice in choices:
            view.add_item(self.button(item_id, choice))
        return view

    async def next_reply(self, service: AdminServices, actor_id: str, **pair: Any) -> Reply:
        try:
            item = await service.reviews.next_item(actor_id, **pair)
        except (AdminError, BackendError) as error:  # the sentence says what to do
            return Reply(describe_error(error, "review"))
        return Reply(pair_text(item), view=self.view(item.id, "a", "tie", "b"))

    async def pressed(self, interaction: discord.Interaction, item_id: int, choice: str) -> None:
        """A button: a verdict (then the reveal) or the next pair (a new answer)."""
        if choice == "next":
            await interaction.response.defer(ephemeral=True, thinking=True)
        else:
            await interaction.response.defer()  # the answer edits the message the button is on
        actor = actor_of(interaction)
        action = "review next" if choice == "next" else "review vote"
        try:
            await self.admin.gate.authorize(actor, action, {"id": item_id, "choice": choice})
        except NotAuthorized as refusal:
            log.warning("refused a review button for user %s", actor.user_id)
            await interaction.followup.send(str(refusal), ephemeral=True)
            return
        service = self.admin.service
        if choice == "next":
            reply = await self.next_reply(service, actor.user_id, same_pair_as=item_id)
            await interaction.edit_original_response(content=reply.text, view=reply.view)
            return
        try:
            item = await service.reviews.record(actor.user_id, item_id, choice)
        except AdminError as error:
            await interaction.followup.send(describe_error(error, "review vote"), ephemeral=True)
            return
        await interaction.edit_original_response(
            content=revealed_text(item), view=self.view(item.id, "next")
        )


class ReviewButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CUSTOM_ID):
    """A verdict ("a", "tie", "b") or "next" button of review item `item_id`."""

    def __init__(self, item_id: int, choice: str) -> None:
        label, style = BUTTONS[choice]
        custom_id = f"gpt2bot:review:{item_id}:{choice}"
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=custom_id))
        self.item_id, self.choice = item_id, choice

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: Any, match: re.Match[str], /
    ) -> Self:
        return cls(int(match["item"]), match["choice"])


def _button_type(commands: ReviewCommands) -> type[ReviewButton]:
    """The buttons' class that answers presses with `commands` (one per platform)."""

    class BoundReviewButton(ReviewButton, template=CUSTOM_ID):
        async def callback(self, interaction: discord.Interaction) -> None:
            try:
                await commands.pressed(interaction, self.item_id, self.choice)
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

        async def work(service: AdminServices, actor: Actor) -> Reply:
            pair = {"version_a": version_a, "version_b": version_b}
            return await commands.next_reply(service, actor.user_id, **pair)

        detail = {"version_a": version_a, "version_b": version_b}
        await admin.run(interaction, "review next", detail, work)

    @review.command(name="stats")
    async def stats(interaction: discord.Interaction) -> None:
        """Win rates per pair of versions from the owners' blind-review verdicts."""

        async def work(service: AdminServices, actor: Actor) -> Reply:
            return Reply(win_rates_text(await service.reviews.win_rates()))

        await admin.run(interaction, "review stats", {}, work)

    return commands
