"""Settings from the environment (and `.env`), validated once at start-up.

Every variable is documented in `.env.example`. A bad value raises `SettingsError`, whose
message is one line naming the variable and the fix; the CLI prints it and exits.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from dotenv import dotenv_values
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from admin.config import LearningConfig
from model.config import DEVICES, DTYPE_NAMES, FinetuneConfig, ModelConfig, OpenAIConfig
from model.engine.config import CPU_DTYPES, EngineConfig
from storage import StorageConfig

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DM_POLICIES = ("allow", "deny", "admins")


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names the variable and the fix."""

    def __init__(self, variable: str, problem: str, fix: str) -> None:
        super().__init__(f"{variable}: {problem}. {fix}")
        self.variable = variable


@dataclass(frozen=True)
class DiscordConfig:
    token: str | None = None  # bot token from the Discord developer portal
    api_base: str | None = None  # REST base URL override (a proxy or a test server)
    gateway_url: str | None = None  # gateway websocket URL override
    guild_ids: tuple[int, ...] = ()  # sync commands to these guilds instantly
    edit_interval_s: float = 1.0  # streaming: edit the answer at most this often (rate limits)
    cooldown_s: float = 5.0  # per user, between /generate, 🔁 and ⏩; 0 turns it off
    dm_policy: str = "allow"  # /generate in direct messages: allow | deny | admins


@dataclass(frozen=True)
class SlackConfig:
    bot_token: str | None = None  # xoxb-...
    signing_secret: str | None = None  # verifies HTTP requests from Slack
    app_token: str | None = None  # xapp-...: Socket Mode instead of HTTP
    api_url: str | None = None  # Web API base URL override


@dataclass(frozen=True)
class AdminConfig:
    user_ids: tuple[str, ...] = ()  # platform user ids with admin rights
    role: str | None = None  # Discord role name that grants admin rights
    retrain_cron: str | None = None  # e.g. "0 3 * * 0": retrain Sundays at 03:00


@dataclass(frozen=True)
class WebConfig:
    admin_token: str | None = None  # dashboard password; generated into admin_token_file if unset
    admin_token_file: Path = Path("./data/admin_token")  # where a generated token is kept


@dataclass(frozen=True)
class Settings:
    storage: StorageConfig = field(default_factory=StorageConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    discord: DiscordConfig = field(default_factory=DiscordConfig)
    slack: SlackConfig = field(default_factory=SlackConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    web: WebConfig = field(default_factory=WebConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    log_level: str = "INFO"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = ".env"
    ) -> Settings:
        """Read settings from `environ` (default: the process environment) over `.env`."""
        values: dict[str, str] = {}
        if dotenv_path is not None and Path(dotenv_path).is_file():
            values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        env = {k: v.strip() for k, v in values.items() if v is not None and v.strip()}
        return cls(
            storage=StorageConfig(url=_database_url(env)),
            model=_model_config(env),
            discord=_discord_config(env),
            slack=_slack_config(env),
            admin=_admin_config(env),
            web=_web_config(env),
            learning=_learning_config(env),
            log_level=_choice(env, "LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        )

    @property
    def log_level_number(self) -> int:
        return int(logging.getLevelName(self.log_level))


def _choice(
    env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...], upper: bool = False
) -> str:
    value = env.get(name, default)
    value = value.upper() if upper else value.lower()
    if value not in allowed:
        raise SettingsError(name, f"{value!r} is not allowed", f"Use one of: {', '.join(allowed)}.")
    return value


def _database_url(env: Mapping[str, str]) -> str:
    url = env.get("DATABASE_URL", StorageConfig.url)
    try:
        make_url(url)
    except ArgumentError:
        raise SettingsError(
            "DATABASE_URL",
            f"{url!r} is not a database URL",
            "Use e.g. sqlite:///./data/gpt2bot.db or postgresql+psycopg://user:pass@host/db.",
        ) from None
    return url


def _model_config(env: Mapping[str, str]) -> ModelConfig:
    model_dir = Path(env.get("MODEL_DIR", str(ModelConfig.model_dir))).expanduser()
    if model_dir.exists() and not model_dir.is_dir():
        raise SettingsError(
            "MODEL_DIR", f"{model_dir} is a file", "Point it at a folder (it is created if absent)."
        )
    device = env.get("DEVICE", "auto").lower()
    if device.split(":")[0] not in DEVICES:
        raise SettingsError(
            "DEVICE", f"{device!r} is not a device", f"Use one of: {', '.join(DEVICES)}."
        )
    return ModelConfig(
        model_dir=model_dir,
        base_model=env.get("BASE_MODEL", ModelConfig.base_model),
        device=device,
        dtype=_choice(env, "DTYPE", "auto", DTYPE_NAMES),
        backend=env.get("GENERATION_BACKEND", ModelConfig.backend).lower(),
        engine=_engine_config(env),
        openai=_openai_config(env),
    )


def _engine_config(env: Mapping[str, str]) -> EngineConfig:
    d = EngineConfig()
    return EngineConfig(
        max_batch=int(_number(env, "ENGINE_MAX_BATCH", d.max_batch, 1, whole=True)),
        max_queue=int(_number(env, "ENGINE_MAX_QUEUE", d.max_queue, 0, whole=True)),
        max_per_user=int(_number(env, "ENGINE_MAX_PER_USER", d.max_per_user, 1, whole=True)),
        timeout_s=float(_number(env, "ENGINE_TIMEOUT_S", d.timeout_s, 1)),
        cpu_dtype=_choice(env, "ENGINE_CPU_DTYPE", d.cpu_dtype, CPU_DTYPES),
        cpu_prepack=_choice(env, "ENGINE_CPU_PREPACK", "true", ("true", "false")) == "true",
        cuda_graphs=_choice(env, "ENGINE_CUDA_GRAPHS", "true", ("true", "false")) == "true",
        max_prefill_tokens=int(
            _number(env, "ENGINE_MAX_PREFILL_TOKENS", d.max_prefill_tokens, 1, whole=True)
        ),
        metrics_log_interval_s=float(
            _number(env, "ENGINE_METRICS_LOG_INTERVAL_S", d.metrics_log_interval_s, 0)
        ),
    )


def _openai_config(env: Mapping[str, str]) -> OpenAIConfig:
    extra = env.get("OPENAI_EXTRA_PARAMS", "true").lower()
    if extra not in ("true", "false", "1", "0", "yes", "no"):
        raise SettingsError(
            "OPENAI_EXTRA_PARAMS", f"{extra!r} is not true or false", "Use true or false."
        )
    return OpenAIConfig(
        base_url=_http_url(env, "OPENAI_BASE_URL", ("http", "https")) or OpenAIConfig.base_url,
        api_key=env.get("OPENAI_API_KEY"),
        model=env.get("OPENAI_MODEL"),
        extra_params=extra in ("true", "1", "yes"),
    )


def _http_url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in schemes or not parsed.netloc:
        raise SettingsError(
            name, f"{value!r} is not a {'/'.join(schemes)} URL", f"Use e.g. {schemes[-1]}://host/."
        )
    return value


def _discord_config(env: Mapping[str, str]) -> DiscordConfig:
    raw_ids = [part.strip() for part in env.get("DISCORD_GUILD_IDS", "").split(",") if part.strip()]
    if any(not part.isdigit() for part in raw_ids):
        raise SettingsError(
            "DISCORD_GUILD_IDS",
            f"{env['DISCORD_GUILD_IDS']!r} is not a list of guild ids",
            "Use comma-separated numeric ids, e.g. 123456789012345678,234567890123456789.",
        )
    return DiscordConfig(
        token=env.get("DISCORD_TOKEN"),
        api_base=_http_url(env, "DISCORD_API_BASE", ("http", "https")),
        gateway_url=_http_url(env, "DISCORD_GATEWAY_URL", ("ws", "wss")),
        guild_ids=tuple(int(part) for part in raw_ids),
        edit_interval_s=_number(env, "DISCORD_EDIT_INTERVAL_SECONDS", 1.0, 0.1, 60.0),
        cooldown_s=_number(env, "DISCORD_COOLDOWN_SECONDS", 5.0, 0.0, 3600.0),
        dm_policy=_choice(env, "DISCORD_DM_POLICY", "allow", DM_POLICIES),
    )


def _slack_config(env: Mapping[str, str]) -> SlackConfig:
    config = SlackConfig(
        bot_token=env.get("SLACK_BOT_TOKEN"),
        signing_secret=env.get("SLACK_SIGNING_SECRET"),
        app_token=env.get("SLACK_APP_TOKEN"),
        api_url=_http_url(env, "SLACK_API_URL", ("http", "https")),
    )
    if config.bot_token and not config.app_token and not config.signing_secret:
        raise SettingsError(
            "SLACK_SIGNING_SECRET",
            "missing (needed to verify Slack's HTTP requests)",
            "Copy it from your Slack app's Basic Information page, or set SLACK_APP_TOKEN "
            "for Socket Mode.",
        )
    if config.app_token and not config.app_token.startswith("xapp-"):
        raise SettingsError(
            "SLACK_APP_TOKEN", "does not start with 'xapp-'", "Use the app-level token."
        )
    return config


def _admin_config(env: Mapping[str, str]) -> AdminConfig:
    cron = env.get("RETRAIN_CRON")
    if cron is not None:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(cron)
        except ValueError as error:
            raise SettingsError(
                "RETRAIN_CRON",
                f"{cron!r} is not a cron expression ({error})",
                "Use five fields: minute hour day month weekday, e.g. '0 3 * * 0'.",
            ) from None
    user_ids = tuple(part.strip() for part in env.get("ADMIN_USER_IDS", "").split(",") if part)
    return AdminConfig(
        user_ids=tuple(u for u in user_ids if u), role=env.get("ADMIN_ROLE"), retrain_cron=cron
    )


MIN_ADMIN_TOKEN_CHARS = 16  # shorter tokens are guessable


def _web_config(env: Mapping[str, str]) -> WebConfig:
    token = env.get("ADMIN_TOKEN")
    if token is not None and len(token) < MIN_ADMIN_TOKEN_CHARS:
        raise SettingsError(
            "ADMIN_TOKEN",
            f"is {len(token)} characters long, too short to be safe",
            f"Use at least {MIN_ADMIN_TOKEN_CHARS} random characters, or remove it to have one "
            "generated.",
        )
    token_file = Path(env.get("ADMIN_TOKEN_FILE", str(WebConfig.admin_token_file))).expanduser()
    return WebConfig(admin_token=token, admin_token_file=token_file)


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    low: float,
    high: float = math.inf,
    whole: bool = False,
) -> float:
    """A numeric setting in [low, high] (`whole`: an integer), or `default` when unset."""
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high or (whole and not value.is_integer()):  # NaN fails too
        kind = "whole number" if whole else "number"
        bounds = f"from {low:g} to {high:g}" if high != math.inf else f"≥ {low:g}"
        raise SettingsError(
            name,
            f"{raw!r} is not a {kind} {bounds}",
            "Set a number in that range, or remove the line to use the default.",
        )
    return value


def _learning_config(env: Mapping[str, str]) -> LearningConfig:
    base, tune = LearningConfig(), FinetuneConfig()
    finetune = FinetuneConfig(
        epochs=int(_number(env, "TRAIN_EPOCHS", tune.epochs, 1, 100)),
        learning_rate=_number(env, "TRAIN_LEARNING_RATE", tune.learning_rate, 1e-7, 1.0),
        batch_size=int(_number(env, "TRAIN_BATCH_SIZE", tune.batch_size, 1, 512)),
        grad_accum=int(_number(env, "TRAIN_GRAD_ACCUM", tune.grad_accum, 1, 512)),
        block_size=int(_number(env, "TRAIN_BLOCK_SIZE", tune.block_size, 16, 1024)),
        checkpoint_every=int(_number(env, "TRAIN_CHECKPOINT_EVERY", tune.checkpoint_every, 1, 1e6)),
        device=env.get("DEVICE", "auto").lower(),
        dtype=env.get("DTYPE", "auto").lower(),
    )
    return LearningConfig(
        rating_min_score=int(_number(env, "RATING_MIN_SCORE", base.rating_min_score, -1e6, 1e6)),
        rating_min_raters=int(_number(env, "RATING_MIN_RATERS", base.rating_min_raters, 1, 1e6)),
        promote_tolerance=_number(env, "PROMOTE_TOLERANCE", base.promote_tolerance, 0, 100),
        auto_promote=_choice(env, "AUTO_PROMOTE", "true", ("true", "false")) == "true",
        finetune=finetune,
    )
