"""The web platform's settings (read from the environment when the web playground starts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MIN_ADMIN_TOKEN_CHARS = 16  # shorter tokens are guessable


def check_admin_token(token: str) -> None:
    if len(token) < MIN_ADMIN_TOKEN_CHARS:
        raise ValueError(
            f"is {len(token)} characters long, too short to be safe",
            f"Use at least {MIN_ADMIN_TOKEN_CHARS} random characters, or remove it to have one "
            "generated.",
        )


@dataclass(frozen=True)
class WebConfig:
    # dashboard password; generated into admin_token_file if unset
    admin_token: str | None = field(
        default=None, metadata={"env": "ADMIN_TOKEN", "check": check_admin_token}
    )
    # where a generated token is kept
    admin_token_file: Path = field(
        default=Path("./data/admin_token"), metadata={"env": "ADMIN_TOKEN_FILE"}
    )
