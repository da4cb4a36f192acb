"""Who is who on the web: a per-browser id, CSRF tokens, the admin token and admin sessions.

Every browser gets a random id in an HttpOnly cookie; it is the rater id of its ratings and the
owner of its history. Every state-changing request must carry `X-CSRF-Token`, an HMAC of that id
under a per-process secret that only same-origin JavaScript can read (from `GET /api/session`),
so another site cannot make a visitor's browser generate, rate or run admin actions.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.fairuse import RateLimit
from bot.logs import announce
from bot.platforms.web.config import WebConfig

log = logging.getLogger(__name__)

CLIENT_COOKIE = "gpt2bot_client"
ADMIN_COOKIE = "gpt2bot_admin"
CSRF_HEADER = "X-CSRF-Token"
CLIENT_COOKIE_MAX_AGE_S = 365 * 24 * 3600  # a browser keeps its history for a year
ADMIN_SESSION_S = 12 * 3600  # admins log in again after half a day
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CLIENT_KEY = web.RequestKey("client_id", str)  # the browser id of a request
LOGIN_WINDOW = "10 minutes"  # wrong admin tokens are counted over this moving window


def load_admin_token(config: WebConfig) -> str:
    """`ADMIN_TOKEN`, else the token kept in `admin_token_file`, else a new one (printed once)."""
    if config.admin_token:
        return config.admin_token
    path = Path(config.admin_token_file)
    if path.is_file():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            log.info("admin token: the one kept in %s", path)
            return token
    token = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    announce(
        f"\n  Admin token for the dashboard (shown once, kept in {path}):\n\n    {token}\n\n"
        "  Set ADMIN_TOKEN in .env to choose your own.\n",
        log,
        logging.WARNING,
    )
    return token


@dataclass
class Guard:
    """Signs CSRF tokens, keeps admin sessions (in memory: a restart logs admins out), and
    rate-limits per client address what a script could repeat: new browser ids, logins."""

    admin_token: str
    secure_cookies: bool = False
    new_clients_per_hour: int = 60
    login_attempts: int = 5  # wrong tokens per LOGIN_WINDOW
    _secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _sessions: dict[str, float] = field(default_factory=dict)  # session id -> expiry (monotonic)
    new_clients: RateLimit = field(init=False)
    wrong_logins: RateLimit = field(init=False)

    def __post_init__(self) -> None:
        self.new_clients = RateLimit(f"{self.new_clients_per_hour}/hour")
        self.wrong_logins = RateLimit(f"{self.login_attempts}/{LOGIN_WINDOW}")

    def login_locked(self, address: str) -> float | None:
        """Seconds until `address` may try again, when it used up its wrong tries."""
        return self.wrong_logins.wait(address)

    def csrf_token(self, client_id: str) -> str:
        return hmac.new(self._secret, client_id.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, request: web.Request) -> bool:
        sent = request.headers.get(CSRF_HEADER, "")
        return hmac.compare_digest(sent, self.csrf_token(request[CLIENT_KEY]))

    def token_ok(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.admin_token.encode())

    def open_session(self) -> str:
        session = secrets.token_urlsafe(32)
        self._sessions[session] = time.monotonic() + ADMIN_SESSION_S
        return session

    def close_session(self, session: str | None) -> None:
        if session:
            self._sessions.pop(session, None)

    def is_admin(self, request: web.Request) -> bool:
        session = request.cookies.get(ADMIN_COOKIE)
        expiry = self._sessions.get(session or "")
        if expiry is None:
            return False
        if expiry < time.monotonic():
            self._sessions.pop(session or "", None)
            return False
        return True

    def set_cookie(self, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            samesite="Strict",
            secure=self.secure_cookies,
            path="/",
        )


GUARD_KEY = web.AppKey("guard", Guard)


def client_id_of(request: web.Request) -> str:
    return request[CLIENT_KEY]


def address_of(request: web.Request) -> str:
    """The client's address (the proxy's, behind a reverse proxy)."""
    return request.remote or "unknown"


def make_middleware(guard: Guard) -> Middleware:
    """Give every browser an id, refuse unsigned writes, and set defensive headers."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        cookie = request.cookies.get(CLIENT_COOKIE, "")
        fresh = not (16 <= len(cookie) <= 64 and cookie.replace("-", "").replace("_", "").isalnum())
        if fresh and request.path.startswith("/api/"):  # pages and static files are free
            wait = guard.new_clients.hit(address_of(request))
            if wait is not None:
                log.warning("too many new browser ids from %s", address_of(request))
                return web.json_response(
                    {
                        "error": f"Too many new sessions from your address: keep your cookies, or "
                        f"try again in {math.ceil(wait)} s."
                    },
                    status=429,
                    headers={"Retry-After": str(math.ceil(wait))},
                )
        request[CLIENT_KEY] = secrets.token_urlsafe(18) if fresh else cookie
        if request.method not in SAFE_METHODS and not guard.csrf_ok(request):
            response: web.StreamResponse = web.json_response(
                {"error": "This page is out of date: reload it and try again."}, status=403
            )
        else:
            response = await handler(request)
        if fresh and not response.prepared:
            guard.set_cookie(response, CLIENT_COOKIE, request[CLIENT_KEY], CLIENT_COOKIE_MAX_AGE_S)
        if not response.prepared:
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            )
        return response

    return middleware
