"""Log output, configured once at the edge. Modules only ``from loguru import logger``.

``pretty`` is for terminals; ``json`` writes one JSON object per line with the timestamp, level,
message and the fields bound to the record (``request_id``, ``backend``, ...).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger

if TYPE_CHECKING:
    from loguru import Message

PRETTY = "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> {message}"


def _pretty(record: Any) -> str:
    """The terminal format; bound fields follow the message as ``key=value``."""
    fields = " ".join(f"{key}={value}" for key, value in record["extra"].items())
    return PRETTY + (f" <dim>{_escape(fields)}</dim>" if fields else "") + "\n{exception}"


def _escape(text: str) -> str:
    return text.replace("<", r"\<").replace("{", "{{").replace("}", "}}")


def json_line(record: dict[str, Any]) -> bytes:
    """One log record as a JSON line: timestamp, level, message, then the bound fields."""
    fields = {
        "timestamp": record["time"].isoformat(),
        "level": record["level"].name,
        "message": record["message"],
        "logger": record["name"],
        **record["extra"],
    }
    if record["exception"] is not None:
        fields["exception"] = repr(record["exception"].value)
    return orjson.dumps(fields, default=str) + b"\n"


def _json_sink(message: Message) -> None:
    sys.stderr.buffer.write(json_line(dict(message.record)))
    sys.stderr.buffer.flush()


class _InterceptHandler(logging.Handler):
    """Sends records of the standard ``logging`` module (uvicorn's) through loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        level: str | int = record.levelname if record.levelname in _LEVELS else record.levelno
        bound = logger.bind(logger=record.name).opt(exception=record.exc_info)
        bound.log(level, record.getMessage())


_LEVELS = {"TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
_CHATTY = ("httpx", "httpcore", "LiteLLM", "litellm", "asyncio")


def configure_logging(level: str, fmt: str) -> None:
    """Replace every handler with one stderr sink at ``level`` in format ``fmt``."""
    logger.remove()
    if fmt == "json":
        logger.add(_json_sink, level=level.upper(), format="{message}")
    else:
        logger.add(sys.stderr, level=level.upper(), format=_pretty, colorize=None)
    # Standard-library records below the level are never created (they cost on the hot path).
    std_level = logging.DEBUG if level in ("trace", "debug") else getattr(logging, level.upper())
    logging.basicConfig(handlers=[_InterceptHandler()], level=std_level, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    for name in _CHATTY:  # one INFO line per upstream request: not ours to log
        logging.getLogger(name).setLevel(max(std_level, logging.WARNING))
