"""Socket Mode: with SLACK_APP_TOKEN the bot dials out to Slack instead of serving HTTP."""

from __future__ import annotations

from dataclasses import replace

from bot.app import App
from bot.platforms.base import RunOptions
from bot.platforms.health import HealthTarget
from bot.platforms.slack import SlackConfig, SlackPlatform
from tests.slack.conftest import EDIT_INTERVAL_S, command_form
from tests.slack.fake_slack import FakeSlack


async def test_slash_command_over_socket_mode(
    app: App, fake_slack: FakeSlack, slack_config: SlackConfig
) -> None:
    socket_mode = replace(slack_config, app_token="xapp-1-test", signing_secret=None)
    platform = SlackPlatform(app, RunOptions(port=0), socket_mode, EDIT_INTERVAL_S)
    await platform.start()
    try:
        assert platform.port is None  # no HTTP server in Socket Mode
        await fake_slack.wait_for(lambda: fake_slack.sockets)
        form = command_form(
            "/generate", "max_new_tokens=3 Once upon a time", "U1", "C1", fake_slack.response_url()
        )
        await fake_slack.push(
            {
                "envelope_id": "e-1",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": form,
            }
        )

        acks = await fake_slack.wait_for(lambda: fake_slack.acks)
        assert acks[0]["envelope_id"] == "e-1"
        await fake_slack.wait_for(lambda: len(fake_slack.called("reactions.add")) == 4)
        (message,) = fake_slack.messages.values()
        assert "*Once upon a time*" in message["text"] and "#1 ·" in message["text"]
    finally:
        await platform.close()


async def test_readiness_follows_the_socket(
    app: App, fake_slack: FakeSlack, slack_config: SlackConfig
) -> None:
    socket_mode = replace(slack_config, app_token="xapp-1-test", signing_secret=None)
    platform = SlackPlatform(app, RunOptions(port=0), socket_mode, EDIT_INTERVAL_S)
    target = HealthTarget(app, platform)
    await platform.start()
    try:
        await fake_slack.wait_for(lambda: fake_slack.sockets)
        state = await target.readiness()
        assert state.ready and state.checks["slack"] == "ok: connected"
    finally:
        await platform.close()
    state = await target.readiness()
    assert not state.ready and state.checks["slack"] == "not connected"
