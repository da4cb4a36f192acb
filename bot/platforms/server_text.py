"""A server's settings as (label, value) facts, worded once; each platform lays them out."""

from __future__ import annotations

from storage import ServerSettingsRecord


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def templates_text(templates: dict[str, str]) -> str:
    """Where each template applies and what it says (new lines shown as \\n)."""
    if not templates:
        return "none (members' text as written)"
    parts = []
    for place in sorted(templates):
        where = "whole server" if place == "" else f"<#{place}>"
        shown = templates[place].replace("\n", "\\n")
        parts.append(f"{where}: `{shown}`")
    return "; ".join(parts)


def settings_facts(record: ServerSettingsRecord, roles: bool = True) -> list[tuple[str, str]]:
    """What a server admin set, in words; `roles`: include the admin roles (Discord grants
    by role id; Slack's workspace admins come from Slack itself)."""
    channels = ", ".join(f"<#{c}>" for c in record.allowed_channels) or "every channel"
    cooldown = "the bot's default" if record.cooldown_s is None else f"{record.cooldown_s:g} s"
    caps = [
        f"max_new_tokens ≤ {record.max_new_tokens_cap}" if record.max_new_tokens_cap else "",
        f"samples ≤ {record.samples_cap}" if record.samples_cap else "",
    ]
    defaults = ", ".join(f"{k} {_number(v)}" for k, v in record.defaults.items()) or "none"
    facts = [
        ("/generate in", channels),
        ("cooldown per member", cooldown),
        ("caps", ", ".join(c for c in caps if c) or "none"),
        ("defaults", defaults),
        ("ratings feed training", "yes" if record.ratings_train else "no"),
        ("prompt template", templates_text(record.templates)),
    ]
    if roles:
        ids = ", ".join(f"<@&{r}>" for r in record.admin_role_ids)
        facts.append(("admin roles", ids or "none (Manage Server only)"))
    return facts
