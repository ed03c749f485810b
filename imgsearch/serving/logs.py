"""Logging set-up, done once at each entry point: plain text on a terminal,
one JSON object per line in containers (IMGSEARCH_LOG_JSON=1)."""

from __future__ import annotations

import json
import logging
import os
import sys


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str | None = None, json_lines: bool | None = None) -> None:
    """Configures the root logger from arguments or IMGSEARCH_LOG_* env vars."""
    level = level or os.environ.get("IMGSEARCH_LOG_LEVEL", "INFO")
    if json_lines is None:
        json_lines = os.environ.get("IMGSEARCH_LOG_JSON", "0").lower() in ("1", "true", "yes")
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
