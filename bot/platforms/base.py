"""The `gpt2bot.platforms` seam.

A platform plugin is an entry point in the `gpt2bot.platforms` group whose object is a
`PlatformFactory`: called with the running `App`, the `RunOptions` and its own config, it
returns a `Platform`. `gpt2bot run` awaits `Platform.run()` until SIGINT/SIGTERM, then awaits
`Platform.stop()`.

A factory names its settings dataclass with `@uses_config(MyConfig)`: each field's metadata
names its environment variable (see `bot/settings.py`), so a third-party platform's settings
come from `.env` like ours. `gpt2bot run` reads and checks them (the dataclass's `check()`)
before it spends a minute preparing the model, so a missing token is reported at once.

A factory whose platform serves HTTP at `RunOptions.host:port` says so with `@serves_http`:
while the model is prepared (a first start may train the bootstrap model for a minute),
`gpt2bot run` answers there with a "preparing" page, then hands the address over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from bot.settings import Settings, check_config, read_config

if TYPE_CHECKING:
    from bot.app import App

Factory = TypeVar("Factory")


@dataclass(frozen=True)
class RunOptions:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class NoConfig:
    """For platforms without settings of their own."""


class Platform(Protocol):
    """A chat front-end that turns its events into use-case calls and renders the results."""

    name: str

    async def run(self) -> None:
        """Serve until `stop()` is called (or the task is cancelled)."""
        ...

    async def stop(self) -> None:
        """Stop accepting new requests, tell users about in-flight ones, release resources."""
        ...


class PlatformFactory(Protocol):
    def __call__(self, app: App, options: RunOptions, config: Any) -> Platform:
        """Build the platform for `app`; raise `ValueError` with a clear message on bad setup.
        `config` is an instance of the class given to `uses_config` (else `NoConfig`)."""
        ...


def uses_config(config_class: type) -> Callable[[Factory], Factory]:
    """Name the settings dataclass a platform factory reads from the environment."""

    def attach(factory: Factory) -> Factory:
        factory.config_class = config_class  # type: ignore[attr-defined]
        return factory

    return attach


def serves_http(factory: Factory) -> Factory:
    """Mark a platform factory whose platform listens for HTTP on `RunOptions.host:port`."""
    factory.serves_http = True  # type: ignore[attr-defined]
    return factory


def platform_serves_http(factory: object) -> bool:
    return bool(getattr(factory, "serves_http", False))


def platform_config(factory: object, settings: Settings) -> Any:
    """The factory's config read from `settings.env` and checked (`SettingsError`)."""
    config = read_config(getattr(factory, "config_class", NoConfig), settings.env)
    check_config(config)
    return config
