"""What an admin is told after changing what the fleet serves (`model use|rollback`,
`ab start|stop`), worded once for Discord, Slack and the dashboard: what the database now says
and how the live `gpt2bot run` processes follow it (`admin.fleet_view.FleetView.summary`)."""

from __future__ import annotations

from collections.abc import Callable

from admin.fleet_view import FleetView

Markup = Callable[[str], str]


def _plain(text: str) -> str:
    return text


def switched(version: str, view: FleetView, code: Markup = _plain) -> str:
    """After `model use` or `rollback` in a serving process (which hot-swapped already)."""
    return (
        f"Now serving {code(version)} here, and the database names it the active version "
        f"(new requests use it; running ones finish on the old one). {view.summary()}"
    )


def experiment_followed(view: FleetView) -> str:
    """After `ab start` or `ab stop`: how the processes follow the experiment."""
    return f"Every process follows the database: {view.summary()}"
