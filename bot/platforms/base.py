"""The `gpt2bot.platforms` seam.

A platform plugin is an entry point in the `gpt2bot.platforms` group whose object is a
`PlatformFactory`: called with the running `App` and the `RunOptions`, it returns a `Platform`.
`gpt2bot run` awaits `Platform.run()` until SIGINT/SIGTERM, then awaits `Platform.stop()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.app import App


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
