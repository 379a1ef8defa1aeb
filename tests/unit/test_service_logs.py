"""`--log-format json`: one JSON object per line with time (UTC), level, logger, message and the
extra fields, never a secret's value; `text` without `--log-level` leaves logging as it was."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from cise.logs import REDACTED, JsonFormatter, configure_from, configure_logging, say
from cise.main import build_parser


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger, configured for JSON into a buffer; put back as it was afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_is_one_json_line_with_utc_time_level_logger_message_and_extras(
    captured: io.StringIO,
) -> None:
    logging.getLogger("hub.test").warning(
        "channel %d low\non two lines", 7, extra={"channel": 7, "partner": b"\x01\x02"}
    )
    (entry,) = _lines(captured)
    assert entry["level"] == "warning" and entry["logger"] == "hub.test"
    assert entry["message"] == "channel 7 low\non two lines"
    assert entry["channel"] == 7 and entry["partner"] == "0x0102"
    when = datetime.fromisoformat(str(entry["time"]))
    assert when.utcoffset() == timedelta(0)
    assert abs((datetime.now(when.tzinfo) - when).total_seconds()) < 60


def test_secret_fields_are_never_written(captured: io.StringIO) -> None:
    logging.getLogger("x").info(
        "opened", extra={"private_key": "0xdeadbeef", "password": "hunter2",
                         "meter_token": "tok", "nested": {"api_key": "k", "port": 1}},
    )  # fmt: skip
    text = captured.getvalue()
    assert "deadbeef" not in text and "hunter2" not in text and '"tok"' not in text
    (entry,) = _lines(captured)
    assert entry["private_key"] == REDACTED and entry["password"] == REDACTED
    assert entry["nested"] == {"api_key": REDACTED, "port": 1}


def test_an_exception_stays_inside_its_json_line(captured: io.StringIO) -> None:
    try:
        raise ValueError("bad input")
    except ValueError:
        logging.getLogger("x").exception("failed")
    (entry,) = _lines(captured)
    assert "ValueError: bad input" in str(entry["exception"])


def test_below_the_level_nothing_is_written(captured: io.StringIO) -> None:
    logging.getLogger("x").debug("quiet")
    assert captured.getvalue() == ""


def test_say_is_a_json_record_under_json_logging(captured: io.StringIO) -> None:
    say("hub stopped", signal="SIGTERM")
    (entry,) = _lines(captured)
    assert entry["message"] == "hub stopped" and entry["signal"] == "SIGTERM"


def test_say_is_the_plain_line_otherwise(capsys: pytest.CaptureFixture[str]) -> None:
    say("hub stopped")
    assert capsys.readouterr().err == "hub stopped\n"


def test_the_formatter_alone() -> None:
    record = logging.LogRecord("a.b", logging.ERROR, __file__, 1, "x=%s", ("y",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["level"], entry["logger"], entry["message"]) == ("error", "a.b", "x=y")


@pytest.mark.parametrize(
    "argv",
    [
        ["hub", "serve"],
        ["agent", "receive", "--hub", "0x" + "11" * 20, "--hub-port", "1"],
        ["watchtower", "serve"],
        ["api", "serve"],
        ["asset", "run", "a", "--hub", "0x" + "11" * 20, "--hub-port", "1", "--tariff", "{}"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_every_service_takes_the_log_and_metrics_options(argv: list[str]) -> None:
    args = build_parser().parse_args([*argv, "--log-format", "json", "--log-level", "debug",
                                      "--metrics-port", "0"])  # fmt: skip
    assert (args.log_format, args.log_level, args.metrics_port) == ("json", "debug", 0)
    assert args.metrics_host == "127.0.0.1"
    plain = build_parser().parse_args(argv)
    assert (plain.log_format, plain.log_level, plain.metrics_port) == ("text", None, None)


def test_text_without_a_level_leaves_logging_alone() -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    configure_from(build_parser().parse_args(["hub", "serve"]))
    assert (list(root.handlers), root.level) == before


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml")
