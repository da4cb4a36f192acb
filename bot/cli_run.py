"""`gpt2bot run`: the platform, its health endpoints, and a clean stop on SIGINT/SIGTERM.

The order is what an operator sees: the platform's settings are checked first (a missing
token is told at once); `HEALTH_PORT` and, for a platform that serves HTTP (`@serves_http`,
the web playground), a "preparing" page start listening before the database is migrated and
the model prepared (a first start may train the bootstrap model for a minute); then the
platform takes over its address.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from admin.follow import ProcessIdentity
from bot import plugins
from bot.platforms.base import RunOptions, platform_config, platform_serves_http
from bot.platforms.health import HealthServer, HealthTarget, PreparingPage
from bot.progress import BootstrapProgress
from bot.settings import Settings


class CommandError(Exception):
    """An expected failure: the message is printed as is."""


def pick_platform(settings: Settings, requested: str | None) -> str:
    if requested:
        return requested
    if settings.env.get("DISCORD_TOKEN"):
        return "discord"
    if settings.env.get("SLACK_BOT_TOKEN"):
        return "slack"
    return "web"


async def open_app(
    settings: Settings, *, background: bool = False, model: str = "serve", **options: Any
) -> Any:
    """The App from the one composition root, with the bootstrap progress on the terminal;
    torch and transformers are imported only when a command runs, so `gpt2bot --help` and
    bad arguments answer at once."""
    from bot.app import App

    listeners = options.pop("listeners", ())
    return await App.open(
        settings,
        background=background,
        model=model,  # type: ignore[arg-type]
        progress=BootstrapProgress(listeners=listeners),
        **options,
    )


async def run(settings: Settings, args: argparse.Namespace) -> int:
    name = pick_platform(settings, args.platform)
    try:
        factory = plugins.load(plugins.PLATFORM_GROUP, name)
    except plugins.PluginNotFound as error:
        raise CommandError(
            f"the {name} platform is not available in this build ({error}). "
            "Run `gpt2bot demo` for a local demonstration."
        ) from None
    # a bad or missing setting is reported before a minute is spent preparing the model
    config = platform_config(factory, settings)
    options = RunOptions(host=args.host, port=args.port)
    target = HealthTarget()
    health = HealthServer(settings.health, target)
    page = PreparingPage(options.host, options.port) if platform_serves_http(factory) else None
    await health.start()
    try:
        if page is not None:
            await page.start()
        try:
            listeners = [page.progress] if page is not None else []
            process = ProcessIdentity(name, settings.env.get("DISCORD_SHARDS", ""))
            app = await open_app(settings, background=True, listeners=listeners, process=process)
        finally:
            if page is not None:
                await page.close()  # the playground listens there next
        try:
            platform = factory(app, options, config)
            target.attach(app, platform)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(platform.stop()))
            await platform.run()
        finally:
            target.detach()
            await app.close()
    finally:
        await health.close()
    return 0
