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
    # new browser ids one client address may get per hour: dropping the cookie does not get
    # around the per-member cooldown and limits (many people behind one NAT: raise it)
    new_clients_per_hour: int = field(
        default=60, metadata={"env": "WEB_NEW_CLIENTS_PER_HOUR", "min": 1, "max": 100_000}
    )
    # wrong admin tokens one address may try per 10 minutes before logins from it are locked
    # (the right token too) until the window passes; the lock is audited
    login_attempts: int = field(
        default=5, metadata={"env": "WEB_LOGIN_ATTEMPTS", "min": 1, "max": 1000}
    )
