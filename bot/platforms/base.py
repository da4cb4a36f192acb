"""The `gpt2bot.platforms` seam.

A platform plugin is an entry point in the `gpt2bot.platforms` group whose object is a
`PlatformFactory`: called with the running `App` and the `RunOptions`, it returns a `Platform`.
`gpt2bot run` awaits `Platform.run()` until SIGINT/SIGTERM, then awaits `Platform.stop()`.

A factory may also carry a settings check (`checks_settings`): `gpt2bot run` calls it before it
spends a minute preparing the model, so a missing token is reported at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from bot.app import App
    from bot.settings import Settings

SettingsCheck = Callable[["Settings"], None]
Factory = TypeVar("Factory")


@dataclass(frozen=True)
class RunOptions:
    host: str = "127.0.0.1"
    port: int = 8080


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
    def __call__(self, app: App, options: RunOptions) -> Platform:
        """Build the platform for `app`; raise `ValueError` with a clear message on bad setup."""
        ...


def checks_settings(check: SettingsCheck) -> Callable[[Factory], Factory]:
    """Give a platform factory a settings check: `check(settings)` raises `ValueError` with a
    message naming the setting and the fix when the platform cannot start as configured."""

    def attach(factory: Factory) -> Factory:
        factory.check_settings = check  # type: ignore[attr-defined]
        return factory

    return attach


def check_settings(factory: object, settings: Settings) -> None:
    """Run the factory's settings check, if it has one (`ValueError` when it fails)."""
    check: SettingsCheck | None = getattr(factory, "check_settings", None)
    if check is not None:
        check(settings)
