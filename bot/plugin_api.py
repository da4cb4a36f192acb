"""The plugin API: everything a gpt2bot plugin may import, and nothing else.

    from bot import plugin_api as gpt2bot

    gpt2bot.require_api(1)  # at import time: fails with a clear sentence on an older gpt2bot

Three kinds of plugin, each an entry point (docs/plugins.md walks through one of each):
- `gpt2bot.platforms`: a `PlatformFactory` `create(app, options, config) -> Platform`;
  `app` is an `AppHandle` (`app.chat` for members' commands, `admin_commands(app)` for `/admin`);
- `gpt2bot.backends`: `factory(model_config, version, path) -> Backend`;
- `gpt2bot.moderators`: `factory(moderation_config) -> Moderator`.

Names listed in `__all__` keep their meaning within a major `API_VERSION`; a minor version only
adds names. Every other module of gpt2bot is internal and may move in any release
(`tests/bot/test_plugin_api.py` fails when a name leaves this list).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

from admin.auth import Actor, AdminGate, NotAuthorized
from admin.base import AdminServices
from admin.errors import AdminError
from admin.moderation.base import PASSED, ModerationConfig, Moderator, Verdict
from admin.moderation.fake import FakeModerator
from bot.admin_commands import AdminCommands, AdminReply, Chart, Renderer, Surface, Upload
from bot.chat import ChatService, Finished, GenerateEvent, Origin
from bot.params import InvalidRequest
from bot.platforms.base import (
    NoConfig,
    Platform,
    PlatformFactory,
    RunOptions,
    serves_http,
    uses_config,
)
from bot.settings import SettingsError
from model.backends.base import (
    GPT2_CONTEXT_TOKENS,
    Backend,
    BackendError,
    Busy,
    Cancelled,
    Chunk,
    GenerationEvent,
    GenerationHandle,
    GenerationRequest,
    GenerationResult,
    Queued,
    QueueHandle,
    SamplingParams,
    TimedOut,
)
from model.backends.fake import ScriptedBackend
from model.config import ModelConfig

# (major, minor): a major bump removes or changes a name; a minor bump only adds names
API_VERSION = (1, 1)  # 1.1: Renderer, Upload (a platform words /admin its own way)


class PluginAPIError(RuntimeError):
    """This gpt2bot's plugin API is not the one a plugin was written for."""


def require_api(major: int, minor: int = 0) -> None:
    """Call at import time with the API version the plugin was written against: raises
    `PluginAPIError` (a sentence that says what to upgrade) unless this gpt2bot offers it."""
    have_major, have_minor = API_VERSION
    if major != have_major or minor > have_minor:
        raise PluginAPIError(
            f"This plugin needs gpt2bot's plugin API {major}.{minor}, and this gpt2bot offers "
            f"{have_major}.{have_minor}. Install a gpt2bot release with API {major}.{minor}, "
            "or a version of the plugin written for this one."
        )


class AppHandle(Protocol):
    """The parts of the running app a platform may use (`gpt2bot run` passes the app)."""

    chat: ChatService  # members' use-cases: generate, regenerate, continue, rate, history
    admin: AdminServices  # the admin services, for `AdminCommands` (call them through it)
    gate: AdminGate  # who may do what; `AdminCommands` asks it before every command
    backend: Backend  # what generates: its `model_version`, for a status line


def admin_commands(
    app: AppHandle, surface: Surface | None = None, renderer: Renderer | None = None
) -> AdminCommands:
    """The `/admin` command set for a platform that writes its replies as `surface` says, or
    words them as its own `renderer` (a `Renderer` subclass) does."""
    return AdminCommands(app, surface, renderer)


@asynccontextmanager
async def app_for_tests(
    folder: str | Path,
    *,
    backend: Backend | None = None,
    moderator: Moderator | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[AppHandle]:
    """For a plugin's tests: a running app on a new SQLite database in `folder`, generating
    with `backend` (default `ScriptedBackend()`) and screening with `moderator` (default
    `FakeModerator()`); `env` adds settings, e.g. `{"ADMIN_USER_IDS": "alice"}`."""
    from bot.app import App  # the composition root; internal, so only reached from here
    from bot.settings import Settings

    values = {
        "DATABASE_URL": f"sqlite:///{Path(folder) / 'gpt2bot.db'}",
        "MODEL_DIR": str(Path(folder) / "models"),
        "COOLDOWN_SECONDS": "0",
        **(env or {}),
    }
    settings = Settings.from_env(values, dotenv_path=None)
    app = await App.open(
        settings, backend=backend or ScriptedBackend(), moderator=moderator or FakeModerator()
    )
    try:
        yield app
    finally:
        await app.close()


__all__ = [
    "API_VERSION",
    "GPT2_CONTEXT_TOKENS",
    "PASSED",
    "Actor",
    "AdminCommands",
    "AdminError",
    "AdminReply",
    "AppHandle",
    "Backend",
    "BackendError",
    "Busy",
    "Cancelled",
    "Chart",
    "ChatService",
    "Chunk",
    "FakeModerator",
    "Finished",
    "GenerateEvent",
    "GenerationEvent",
    "GenerationHandle",
    "GenerationRequest",
    "GenerationResult",
    "InvalidRequest",
    "ModelConfig",
    "ModerationConfig",
    "Moderator",
    "NoConfig",
    "NotAuthorized",
    "Origin",
    "Platform",
    "PlatformFactory",
    "PluginAPIError",
    "QueueHandle",
    "Queued",
    "Renderer",
    "RunOptions",
    "SamplingParams",
    "ScriptedBackend",
    "SettingsError",
    "Surface",
    "TimedOut",
    "Upload",
    "Verdict",
    "admin_commands",
    "app_for_tests",
    "require_api",
    "serves_http",
    "uses_config",
]
