"""Log output, configured once at the edge. Modules only ``from loguru import logger``.

``pretty`` is for terminals; ``json`` writes one JSON object per line with the timestamp, level,
message and the fields bound to the record (``request_id``, ``backend``, ...).

The one line every request writes (:func:`request_line`) skips loguru's record machinery (the
caller's frame, process and thread, the handler's colour markup parsed per record): measured at
38 µs (json) and 46 µs (pretty) a line through loguru, about a twentieth of a relayed request's
CPU, against a few µs written here, in the same format.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

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
    exception = record["exception"]
    return _json_bytes(
        record["time"],
        record["level"].name,
        record["message"],
        record["name"],
        record["extra"],
        None if exception is None else repr(exception.value),
    )


def _json_bytes(
    time: datetime,
    level: str,
    message: str,
    name: str | None,
    extra: dict[str, Any],
    exception: str | None = None,
) -> bytes:
    fields = {
        "timestamp": time.isoformat(),
        "level": level,
        "message": message,
        "logger": name,
        **extra,
    }
    if exception is not None:
        fields["exception"] = exception
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


#: Writes a request line: set by :func:`configure_logging`; None sends it through loguru.
_RequestWriter = Callable[[str, str, dict[str, Any]], None]
_request_writer: _RequestWriter | None = None


def request_line(name: str, message: str, fields: dict[str, Any]) -> None:
    """Log ``message`` at INFO with the bound ``fields``, as if ``logger.bind(**fields).info``
    in module ``name``, but cheaply once logging is configured."""
    writer = _request_writer
    if writer is None:
        logger.opt(depth=1).bind(**fields).info(message)
    else:
        writer(name, message, fields)


def _json_request(name: str, message: str, fields: dict[str, Any]) -> None:
    sys.stderr.buffer.write(_json_bytes(datetime.now().astimezone(), "INFO", message, name, fields))
    sys.stderr.buffer.flush()


def _pretty_request(stream: TextIO, colour: bool) -> _RequestWriter:
    time_on, level, dim, off = (
        ("\x1b[32m", "\x1b[1m", "\x1b[2m", "\x1b[0m") if colour else ("",) * 4
    )

    def write(_name: str, message: str, fields: dict[str, Any]) -> None:
        now = datetime.now()
        pairs = " ".join(f"{key}={value}" for key, value in fields.items())
        stamp = f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d}"
        stream.write(f"{time_on}{stamp}{off} {level}INFO   {off} {message} {dim}{pairs}{off}\n")
        stream.flush()

    return write


def _no_request_line(_name: str, _message: str, _fields: dict[str, Any]) -> None:
    pass


def reset_request_line() -> None:
    """Send request lines through loguru again (tests that replace loguru's handlers)."""
    global _request_writer
    _request_writer = None


def configure_logging(level: str, fmt: str) -> None:
    """Replace every handler with one stderr sink at ``level`` in format ``fmt``."""
    global _request_writer
    logger.remove()
    if fmt == "json":
        logger.add(_json_sink, level=level.upper(), format="{message}")
        _request_writer = _json_request
    else:
        logger.add(sys.stderr, level=level.upper(), format=_pretty, colorize=None)
        _request_writer = _pretty_request(sys.stderr, _colours(sys.stderr))
    if logger.level(level.upper()).no > logger.level("INFO").no:
        _request_writer = _no_request_line
    # Standard-library records below the level are never created (they cost on the hot path).
    std_level = logging.DEBUG if level in ("trace", "debug") else getattr(logging, level.upper())
    logging.basicConfig(handlers=[_InterceptHandler()], level=std_level, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    for name in _CHATTY:  # one INFO line per upstream request: not ours to log
        logging.getLogger(name).setLevel(max(std_level, logging.WARNING))


def _colours(stream: TextIO) -> bool:
    """Whether loguru colours ``stream`` (``colorize=None``): when it is a terminal."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
