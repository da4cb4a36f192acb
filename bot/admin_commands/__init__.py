"""The admin command set, described once for every platform.

A platform that takes typed lines turns one (`model list`, `curate add Some text`) into
`AdminCommands.run(actor, text)`; a platform whose commands take typed options (Discord's
slash commands) calls `AdminCommands.call(actor, "model use", {"version": "v2"})`. Either way
authorization and the audit log come first (`admin.auth.AdminGate`), the command does its work
through the admin services, and its `Renderer` words the result: the default writes text in
the platform's markup (its `Surface` says how to write code, bold and user text); a platform
overrides the methods it words its own way (Discord: its layout, chart attachments, buttons).
Refusals, mistakes and incidents come back as sentences. A new platform offers `/admin` by
rendering replies, not by copying another platform's handlers (Discord, Slack and
`examples/linechat` do this).

- `surface.py`: `Surface` (how a platform writes), `AdminReply` and `Chart` (what it shows)
- `context.py`: `Context` (one command: who asked, its options), `Command`, `Upload`
- `render.py`: `Renderer`, the words of every answer
- `commands.py`: `AdminCommands` (dispatch), the command table and the help text
- `learning.py`: curate, retrain, model, stats; `servers.py`: server settings;
  `ab.py`: A/B experiments and the blind review; `lines.py`: a server's own model line
"""

from bot.admin_commands.commands import COMMANDS, AdminCommands, incident_sentence
from bot.admin_commands.context import Upload
from bot.admin_commands.render import Renderer
from bot.admin_commands.surface import AdminReply, Chart, Surface

__all__ = [
    "COMMANDS",
    "AdminCommands",
    "AdminReply",
    "Chart",
    "Renderer",
    "Surface",
    "Upload",
    "incident_sentence",
]
