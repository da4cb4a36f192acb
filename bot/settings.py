"""Settings from the environment (and `.env`), validated once at start-up.

A setting is defined once, as a field of its consumer's frozen config dataclass (e.g.
`model/engine/config.py`), whose metadata names the variable, its bounds and a help line:

    max_batch: int = field(default=32, metadata={"env": "ENGINE_MAX_BATCH", "min": 1,
                                                 "help": "rows decoded together"})

`read_config(cls, env)` is the one reader: it converts each value by the field's type (int
fields take whole numbers only), checks bounds, choices, URL schemes and the field's own
`check`, and raises `SettingsError(variable, problem, fix)`. A field without `env` whose type
is a dataclass is read recursively (a section). Metadata keys:
`env`, `help`, `min`, `max`, `choices`, `url_schemes`, `check` (a callable that raises
`ValueError(problem, fix)`), `lower`/`upper` (normalize case of free text).

Every variable is documented in `.env.example`; a test compares it with the config classes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from dotenv import dotenv_values

from admin.config import AdminConfig, FleetConfig, LearningConfig
from admin.moderation import ModerationConfig
from bot.chat import ChatConfig
from bot.health import HealthConfig
from model.config import ModelConfig
from storage import StorageConfig

C = TypeVar("C")
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
DEFAULT_FIX = "Fix the value, or remove the line to use the default."
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names the variable and the fix."""

    def __init__(self, variable: str, problem: str, fix: str) -> None:
        super().__init__(f"{variable}: {problem}. {fix}")
        self.variable = variable

    @property
    def kind(self) -> str:
        """How the command line names it: an `option` (`--port`) or a `setting`."""
        return "option" if self.variable.startswith("-") else "setting"


@dataclass(frozen=True)
class Settings:
    """The core's settings; platforms read their own section with `read_config(cls, env)`."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    health: HealthConfig = field(default_factory=HealthConfig)  # HEALTH_PORT: probes, metrics
    moderation: ModerationConfig = field(default_factory=ModerationConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)  # FOLLOW_INTERVAL_S
    # None: INFO for `gpt2bot run`, WARNING for one-shot commands (their output is the answer)
    log_level: str | None = field(
        default=None,
        metadata={"env": "LOG_LEVEL", "choices": LOG_LEVELS, "help": "how much to log"},
    )
    # text: one readable line per record; json: one JSON object per line (for log shippers)
    log_format: str = field(
        default="text", metadata={"env": "LOG_FORMAT", "choices": LOG_FORMATS, "lower": True}
    )
    # the raw variables, for the sections that platform plugins read themselves
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = ".env"
    ) -> Settings:
        """Read settings from `environ` (default: the process environment) over `.env`."""
        env = load_env(environ, dotenv_path)
        return dataclasses.replace(read_config(cls, env), env=env)

    def level(self, default: str = "INFO") -> int:
        """The logging level: LOG_LEVEL when set, else `default`."""
        return int(logging.getLevelName(self.log_level or default))


def load_env(
    environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = ".env"
) -> dict[str, str]:
    """The variables: `.env` (when present) under the environment; blank values dropped."""
    values: dict[str, str | None] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        values.update(dotenv_values(dotenv_path))
    values.update(os.environ if environ is None else environ)
    return {k: v.strip() for k, v in values.items() if v is not None and v.strip()}


def read_config(cls: type[C], env: Mapping[str, str]) -> C:
    """Build the config dataclass `cls` from `env`; `SettingsError` names a bad variable.
    (Whether the whole config is enough to start, its `check()`, is `check_config`'s job.)"""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = hints[spec.name]
        if "env" in spec.metadata:
            if spec.metadata["env"] in env:
                values[spec.name] = _read_field(spec, kind, env[spec.metadata["env"]])
        elif dataclasses.is_dataclass(kind):
            values[spec.name] = read_config(typing.cast(type, kind), env)
    return cls(**values)


def check_config(config: object) -> None:
    """Run the config's own `check()` (checks that involve several fields), if it has one;
    it raises `ValueError(variable, problem, fix)`, turned into `SettingsError` here."""
    check = getattr(config, "check", None)
    if callable(check):
        try:
            check()
        except ValueError as error:
            raise _settings_error(error) from None


def variables(cls: type) -> Iterator[str]:
    """Every variable `cls` reads, sections included (for `.env.example` and docs)."""
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        if "env" in spec.metadata:
            yield spec.metadata["env"]
        elif dataclasses.is_dataclass(hints[spec.name]):
            yield from variables(hints[spec.name])


def _settings_error(error: ValueError) -> SettingsError:
    if len(error.args) != 3:
        return SettingsError("settings", str(error), DEFAULT_FIX)
    variable, problem, fix = error.args
    return SettingsError(variable, problem, fix)


def _read_field(spec: dataclasses.Field[Any], kind: Any, raw: str) -> Any:
    meta = spec.metadata
    name = meta["env"]
    base = _without_none(kind)
    if meta.get("lower"):
        raw = raw.lower()
    if meta.get("upper"):
        raw = raw.upper()
    if base is bool:
        value: Any = _boolean(name, raw)
    elif base in (int, float):
        value = _number(name, raw, base, meta)
    elif typing.get_origin(base) is tuple:
        value = _items(name, raw, typing.get_args(base)[0], meta)
    elif base is Path:
        value = Path(raw).expanduser()
    else:
        value = _text(name, raw, meta)
    if "check" in meta:
        try:
            meta["check"](value)
        except ValueError as error:
            problem, fix = error.args if len(error.args) == 2 else (str(error), DEFAULT_FIX)
            raise SettingsError(name, problem, fix) from None
    return value


def _without_none(kind: Any) -> Any:
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return args[0]
    return kind


def _boolean(name: str, raw: str) -> bool:
    word = raw.lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise SettingsError(name, f"{raw!r} is not true or false", "Use true or false.")
    return word in TRUE_WORDS


def _number(name: str, raw: str, kind: type, meta: Mapping[str, Any]) -> int | float:
    """A number in [min, max]; an int field takes whole numbers only (`2.5` is refused)."""
    low, high = meta.get("min", -math.inf), meta.get("max", math.inf)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    whole = kind is int
    if not low <= value <= high or (whole and not value.is_integer()):  # NaN fails too
        noun = "whole number" if whole else "number"
        if high != math.inf and low != -math.inf:
            bounds = f" from {low:g} to {high:g}"
        elif low != -math.inf:
            bounds = f" ≥ {low:g}"
        else:
            bounds = ""
        help_text = f" ({meta['help']})" if "help" in meta else ""
        raise SettingsError(
            name,
            f"{raw!r} is not a {noun}{bounds}",
            f"Set a {noun}{bounds}{help_text}, or remove the line to use the default.",
        )
    return int(value) if whole else value


def _items(name: str, raw: str, item: type, meta: Mapping[str, Any]) -> tuple[Any, ...]:
    parts = tuple(part.strip() for part in raw.split(",") if part.strip())
    if item is int:
        if any(not part.isdigit() for part in parts):
            raise SettingsError(
                name,
                f"{raw!r} is not a list of numeric ids",
                "Use comma-separated numeric ids, e.g. 123456789012345678,234567890123456789.",
            )
        return tuple(int(part) for part in parts)
    return parts


def _text(name: str, raw: str, meta: Mapping[str, Any]) -> str:
    choices: tuple[str, ...] | None = meta.get("choices")
    if choices is not None:
        for choice in choices:
            if raw.lower() == choice.lower():
                return choice
        raise SettingsError(name, f"{raw!r} is not allowed", f"Use one of: {', '.join(choices)}.")
    schemes: tuple[str, ...] | None = meta.get("url_schemes")
    if schemes is not None:
        parsed = urlparse(raw)
        if parsed.scheme not in schemes or not parsed.netloc:
            raise SettingsError(
                name,
                f"{raw!r} is not a {'/'.join(schemes)} URL",
                f"Use e.g. {schemes[-1]}://host/.",
            )
    return raw
