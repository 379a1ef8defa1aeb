"""How a long-running `cise` command logs: `--log-format text|json` and `--log-level`.

`configure_logging` sets the root logger once per process: `text` (the default) is the plain
`LEVEL logger: message` line on stderr; `json` is one JSON object per line on stderr with `time`
(ISO 8601, UTC), `level`, `logger`, `message`, any extra fields the caller passed
(`log.info("...", extra={"channel": ...})`) and `exception` (the formatted traceback) if any.

What it must never do: write a secret. A field whose name says it holds one (key, secret,
password, token, ...) is written as "[redacted]", whatever its value; the message itself is the
caller's responsibility (the code never logs a key).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
REDACTED = "[redacted]"
_SECRET_WORDS = ("key", "secret", "password", "passphrase", "token", "seed", "mnemonic", "auth")
# the attributes every LogRecord has: not "extra" fields
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


_installed: logging.Handler | None = None  # the handler configure_logging put on the root


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """`--log-format` and `--log-level` on a long-running command's parser."""
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default="text", help="log lines on stderr (json: one "
        "object a line)"
    )  # fmt: skip
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default=None,
        help="least severe logged (default: info in json; in text, warnings as before)",
    )  # fmt: skip


def is_secret_field(name: str) -> bool:
    """Whether a field named `name` may hold a secret (its value is never written)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _plain(value: Any) -> Any:
    """`value` as JSON can hold it (bytes as 0x hex, anything else unknown as its str)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {
            str(k): REDACTED if is_secret_field(str(k)) else _plain(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name in _STANDARD or name in entry or name.startswith("_"):
                continue
            entry[name] = REDACTED if is_secret_field(name) else _plain(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


def configure_logging(
    log_format: str = "text", level: str = "info", stream: TextIO | None = None
) -> None:
    """Send every logger's records at `level` and above to `stream` (stderr) in `log_format`."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    global _installed
    root = logging.getLogger()
    if _installed is not None:  # only ours: a host's handlers (pytest's) stay
        root.removeHandler(_installed)
    _installed = handler
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)


def json_logging() -> bool:
    """Whether the process logs JSON lines (`configure_logging(\"json\")`)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def say(message: str, level: int = logging.INFO, **fields: Any) -> None:
    """A service's line on stderr: a JSON log record when logging JSON, else `message` as is."""
    if json_logging():
        logging.getLogger("cise").log(level, message, extra=fields)
    else:
        print(message, file=sys.stderr, flush=True)


def configure_from(args: argparse.Namespace) -> None:
    """`configure_logging` from the parsed `--log-format` and `--log-level`; in text without a
    level, logging stays as it was (Python's default: warnings and errors, bare)."""
    log_format, level = getattr(args, "log_format", "text"), getattr(args, "log_level", None)
    if log_format == "text" and level is None:
        return
    configure_logging(log_format, level or "info")


__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "REDACTED",
    "JsonFormatter",
    "add_log_options",
    "configure_from",
    "configure_logging",
    "is_secret_field",
    "json_logging",
    "say",
]
