"""The `web` platform: a local playground at `/` and the admin dashboard at `/admin`.

Plain HTML/CSS/JS from `static/` (no build step, no CDN, works offline) over a small JSON/SSE
API built on aiohttp. `create` is the `gpt2bot.platforms` entry point.
"""

from bot.platforms.web.config import WebConfig
from bot.platforms.web.platform import WebPlatform, build_web_app, create

__all__ = ["WebConfig", "WebPlatform", "build_web_app", "create"]
