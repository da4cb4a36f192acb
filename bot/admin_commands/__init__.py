"""The admin command set, described once for every platform that takes typed commands.

A platform turns a typed line (`model list`, `curate add Some text`) into
`AdminCommands.run(actor, text)` and renders the `AdminReply` it gets back: text in the
platform's markup (its `Surface` says how to write code, bold and user text), and chart images
to post. Authorization and the audit log come first (`admin.auth.AdminGate`); refusals,
mistakes and incidents come back as sentences. A new platform offers `/admin` by rendering
replies, not by copying another platform's handlers (Slack and `examples/linechat` do this).

- `context.py`: `Surface`, `Context`, `AdminReply`, `Chart`, `Command`
- `commands.py`: `AdminCommands` (dispatch), the command table and the help text
- `learning.py`: curate, retrain, model, stats; `servers.py`: server settings;
  `ab.py`: A/B experiments and the blind review
"""

from bot.admin_commands.commands import COMMANDS, AdminCommands, incident_sentence
from bot.admin_commands.context import AdminReply, Chart, Surface

__all__ = ["COMMANDS", "AdminCommands", "AdminReply", "Chart", "Surface", "incident_sentence"]
