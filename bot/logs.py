"""Logging set-up for the `gpt2bot` command: readable lines, or JSON lines (`LOG_FORMAT=json`)
for log shippers (Loki, Elasticsearch, CloudWatch) that parse one object per line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, and the
    traceback when there is one (inside the object, so a record stays one line)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: int, log_format: str = "text") -> None:
    """Send records at `level` and above to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    json_lines = log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])


def logs_json() -> bool:
    """Whether `configure_logging` set up JSON lines (read from the root logger's handlers)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def announce(message: str, logger: logging.Logger, level: int = logging.INFO) -> None:
    """A line meant for a person at a terminal (the playground's address, a new admin token):
    printed as it is on stderr, or, under LOG_FORMAT=json, logged as one JSON object, so
    every line a log shipper reads parses."""
    if logs_json():
        logger.log(level, " ".join(message.split()))  # its layout is for terminals
    else:
        print(message, file=sys.stderr, flush=True)
