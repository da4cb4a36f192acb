"""Only Slack may talk to the bot: signatures checked, replays refused, start-up validated."""

from __future__ import annotations

import json
import time

import pytest
from slack_sdk.signature import SignatureVerifier

from bot import plugins
from bot.app import App
from bot.platforms.base import RunOptions, platform_config
from bot.platforms.slack import EVENTS_PATH, SlackConfig, create, web_client
from bot.settings import Settings, SettingsError
from storage import GenerationRepository
from tests.slack.conftest import SECRET, SignedClient
from tests.slack.fake_slack import FakeSlack

REPLAY_AGE_S = 6 * 60  # Slack's limit is five minutes


async def test_bad_signature_is_rejected_with_401(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    status, _ = await slack.command("/generate", "Once upon a time", secret="not-the-secret")
    assert status == 401
    assert not fake_slack.called("chat.postMessage")
    assert GenerationRepository(app.db).count() == 0


async def test_unsigned_request_is_rejected(slack: SignedClient, fake_slack: FakeSlack) -> None:
    body = slack.command_body("/generate", "Once upon a time", "U1", "C1")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with slack.session.post(slack.url + EVENTS_PATH, data=body, headers=headers) as r:
        assert r.status == 401
    assert not fake_slack.called("chat.postMessage")


async def test_replayed_request_is_rejected(
    slack: SignedClient, fake_slack: FakeSlack, app: App
) -> None:
    old = int(time.time()) - REPLAY_AGE_S  # correctly signed, but too old
    status, _ = await slack.command("/generate", "Once upon a time", timestamp=old)
    assert status == 401
    assert not fake_slack.called("chat.postMessage")
    assert GenerationRepository(app.db).count() == 0


async def test_tampered_body_is_rejected(slack: SignedClient) -> None:
    stamp = str(int(time.time()))
    body = slack.command_body("/generate", "hello", "U1", "C1")
    signature = str(SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body))
    tampered = body.replace("U1", "UADMIN")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }
    async with slack.session.post(slack.url + EVENTS_PATH, data=tampered, headers=headers) as r:
        assert r.status == 401


async def test_url_verification_challenge_is_answered(slack: SignedClient) -> None:
    body = json.dumps(
        {
            "token": "legacy",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdAL",
            "type": "url_verification",
        }
    )
    status, text = await slack.post(body, "application/json")
    assert status == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdAL" in text


async def test_health_endpoints(slack: SignedClient) -> None:
    async with slack.session.get(slack.url + "/healthz") as r:
        assert r.status == 200
    async with slack.session.get(slack.url + "/readyz") as r:
        assert r.status == 200
        assert (await r.json())["checks"]["slack"] == "ok: connected"
    async with slack.session.get(slack.url + "/metrics") as r:
        assert r.status == 200 and "gpt2bot_model_info" in await r.text()


def test_slack_is_a_registered_platform() -> None:
    assert plugins.load(plugins.PLATFORM_GROUP, "slack") is create


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (SlackConfig(signing_secret="s"), "SLACK_BOT_TOKEN: missing. Copy the Bot User OAuth"),
        (
            SlackConfig(bot_token="xoxb-1"),
            "SLACK_SIGNING_SECRET: missing (needed to verify Slack's HTTP requests). Copy it",
        ),
    ],
)
def test_missing_settings_stop_start_up_with_the_variable_named(
    app: App, config: SlackConfig, message: str
) -> None:
    with pytest.raises(SettingsError) as error:
        create(app, RunOptions(), config)
    assert str(error.value).startswith(message)


async def test_api_url_from_the_environment_and_429s_retried(fake_slack: FakeSlack) -> None:
    settings = Settings.from_env(
        {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_API_URL": f"{fake_slack.url}/api",
        },
        dotenv_path=None,
    )
    client = web_client(platform_config(create, settings))  # as `gpt2bot run` reads it
    assert client.base_url == f"{fake_slack.url}/api/"
    fake_slack.rate_limited["auth.test"] = 2
    response = await client.auth_test()
    assert response["user_id"] == "UBOT"
    assert len(fake_slack.called("auth.test")) == 3  # two 429s, each retried
