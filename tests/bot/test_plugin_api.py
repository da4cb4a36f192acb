"""The declared plugin API (`bot/plugin_api.py`): its names are a promise to plugin authors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot import plugin_api

ROOT = Path(__file__).resolve().parents[2]

# API 1.0. A name leaving this list breaks plugins: bump the major version and say so in
# docs/plugins.md. A name joining it bumps the minor version (and is added here).
API_1_0 = {
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
    "RunOptions",
    "SamplingParams",
    "ScriptedBackend",
    "SettingsError",
    "Surface",
    "TimedOut",
    "Verdict",
    "admin_commands",
    "app_for_tests",
    "require_api",
    "serves_http",
    "uses_config",
}
API_1_1 = API_1_0 | {"Renderer", "Upload"}


def test_every_promised_name_is_still_there() -> None:
    missing = API_1_0 - set(plugin_api.__all__)
    assert not missing, f"these names left the plugin API: {sorted(missing)}"
    for name in plugin_api.__all__:
        assert hasattr(plugin_api, name), f"{name} is listed in __all__ but not defined"


def test_a_new_name_comes_with_a_minor_version() -> None:
    added = set(plugin_api.__all__) - API_1_1
    assert plugin_api.API_VERSION == (1, 1) or added, "bump API_VERSION only with a change"
    assert not added or plugin_api.API_VERSION > (1, 1), (
        f"{sorted(added)} joined the API: bump API_VERSION's minor number and list them here"
    )


def test_a_plugin_learns_at_load_time_when_the_api_is_not_its_own() -> None:
    plugin_api.require_api(1)
    plugin_api.require_api(1, 0)
    plugin_api.require_api(1, 1)
    with pytest.raises(plugin_api.PluginAPIError, match=r"needs gpt2bot's plugin API 2\.0"):
        plugin_api.require_api(2)
    with pytest.raises(plugin_api.PluginAPIError, match=r"offers 1\.1"):
        plugin_api.require_api(1, 7)


def _gpt2bot_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in ("bot", "admin", "model", "storage")}
    return found


def test_the_example_plugins_use_nothing_but_the_api() -> None:
    sources = sorted((ROOT / "examples").rglob("*.py"))
    assert len({p.relative_to(ROOT / "examples").parts[0] for p in sources}) == 3
    for source in sources:
        assert _gpt2bot_imports(source) <= {"bot.plugin_api"}, source


async def test_the_moderator_double_flags_what_the_test_says(tmp_path) -> None:
    def judge(text, extra_terms):
        return plugin_api.Verdict("?" in text, "asks a question")

    moderator = plugin_api.FakeModerator(judge=judge)
    async with plugin_api.app_for_tests(tmp_path, moderator=moderator) as app:
        member = plugin_api.Origin("test", "ann")
        with pytest.raises(plugin_api.InvalidRequest, match="asks a question"):
            await app.chat.generate(member, "Why?")
        finished = await app.chat.generate(member, "Because.")
    assert finished.generations[0].prompt == "Because."
    assert moderator.checked[:2] == ["Why?", "Because."]
