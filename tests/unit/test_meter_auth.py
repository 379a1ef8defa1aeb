"""Meter endpoint authentication: the token file, `identify`, the per-address connection cap,
and the HTTP endpoint with tokens (401, nothing submitted; 503 above the per-address cap), over
real loopback sockets."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import trio

from assets.meter_auth import (
    AddressSlots,
    MeterAuthError,
    identify,
    load_tokens,
    new_token_line,
    parse_tokens,
)
from tests.unit.test_meter_sources import TIMEOUT, Agent, body, client, event, http_server

WASHER = "ab" * 32
DRYER = "cd" * 32


def test_token_lines_are_parsed_and_bad_ones_named() -> None:
    text = f"# machines\n\nwasher-1 {WASHER}\n  dryer.2   {DRYER}  \n"
    assert parse_tokens(text) == {"washer-1": WASHER.encode(), "dryer.2": DRYER.encode()}
    bad = {
        "": "lists no token",
        "# only a comment\n": "lists no token",
        f"washer {WASHER} extra\n": "line 1: expected 'NAME TOKEN'",
        "washer\n": "line 1: expected 'NAME TOKEN'",
        f"wash/er {WASHER}\n": "line 1: machine name",
        f"washer {'ab' * 31}\n": "at least 32 bytes",
        f"washer {WASHER.upper()}\n": "lower-case hex",
        f"washer {WASHER}a\n": "lower-case hex",
        f"a {WASHER}\na {DRYER}\n": "line 2: machine 'a' is listed twice",
        f"a {WASHER}\nb {WASHER}\n": "line 2: the token of 'b' is used twice",
    }
    for content, reason in bad.items():
        with pytest.raises(MeterAuthError, match=reason) as caught:
            parse_tokens(content)
        assert WASHER not in str(caught.value)  # a token never goes into an error


def test_new_token_lines_are_fresh_and_parse(tmp_path: Path) -> None:
    lines = [new_token_line("washer-1"), new_token_line("washer-2")]
    tokens = parse_tokens("".join(lines))
    assert len(tokens["washer-1"]) == 64 and tokens["washer-1"] != tokens["washer-2"]
    with pytest.raises(MeterAuthError, match="machine name"):
        new_token_line("two words")


def test_a_token_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"washer {WASHER}\n")
    for mode in (0o644, 0o640, 0o604, 0o620):
        path.chmod(mode)
        with pytest.raises(MeterAuthError, match=f"mode 0{mode:o}.*chmod 600"):
            load_tokens(path)
    path.chmod(0o600)
    assert load_tokens(path) == {"washer": WASHER.encode()}
    with pytest.raises(MeterAuthError, match="No such file"):
        load_tokens(tmp_path / "missing")
    os.chmod(tmp_path, 0o700)
    with pytest.raises(MeterAuthError, match="Is a directory"):
        load_tokens(tmp_path)


def test_identify_takes_only_a_listed_bearer_token() -> None:
    tokens = parse_tokens(f"washer {WASHER}\ndryer {DRYER}\n")
    assert identify(tokens, f"Bearer {WASHER}".encode()) == "washer"
    assert identify(tokens, f"bearer  {DRYER} ".encode()) == "dryer"
    for header in (None, b"", b"Bearer", b"Bearer ", WASHER.encode(), f"Basic {WASHER}".encode(),
                   f"Bearer {WASHER[:-2]}".encode(), f"Bearer {WASHER}00".encode(),
                   b"Bearer " + b"a" * 5000):  # fmt: skip
        assert identify(tokens, header) is None, header


def test_address_slots_cap_each_address_and_log_once_a_minute() -> None:
    slots = AddressSlots(2)
    assert slots.take("10.0.0.1") and slots.take("10.0.0.1")
    assert not slots.take("10.0.0.1")
    assert slots.take("10.0.0.2")  # another address is not affected
    slots.give_back("10.0.0.1")
    assert slots.take("10.0.0.1")
    assert slots.should_log("10.0.0.1", 100.0)
    assert not slots.should_log("10.0.0.1", 159.0)
    assert slots.should_log("10.0.0.2", 159.0)
    assert slots.should_log("10.0.0.1", 160.0)
    with pytest.raises(ValueError):
        AddressSlots(0)


async def test_http_posts_need_a_valid_token_and_health_stays_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = Agent()
    tokens = parse_tokens(f"washer {WASHER}\n")
    served: list[object] = []

    async def service(document: object) -> tuple[int, object]:
        served.append(document)
        return 200, {"ok": True}

    caplog.set_level(logging.WARNING, logger="assets.meter_sources")
    with trio.fail_after(TIMEOUT):
        async with (
            http_server(agent, tokens=tokens, posts={"/service": service}) as port,
            client(port) as c,
        ):
            assert (await c.request("GET", "/health"))[0] == 200
            for headers, reason in (
                ((), "no meter token"),
                ((("authorization", f"Bearer {DRYER}"),), "a wrong meter token"),
                ((("authorization", WASHER),), "a wrong meter token"),
            ):
                for path in ("/events", "/service"):
                    status, head, got = await c.request(
                        "POST", path, body(event("e1", 1)), headers=headers
                    )
                    assert status == 401 and reason in got["error"], got
                    assert head["www-authenticate"].startswith("Bearer")
            assert agent.order == [] and served == []  # nothing submitted
            good = (("authorization", f"Bearer {WASHER}"),)
            status, _, got = await c.request("POST", "/events", body(event("e1", 1)), headers=good)
            assert status == 200 and got["status"] in ("accepted", "charged"), got
            status, _, got = await c.request("POST", "/service", body({"x": 1}), headers=good)
            assert (status, served) == (200, [{"x": 1}])
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 6 and all("127.0.0.1" in m for m in refusals), refusals
    assert not any(WASHER in m or DRYER in m for m in caplog.messages)


async def test_http_without_tokens_takes_posts_as_before() -> None:
    agent = Agent()
    with trio.fail_after(TIMEOUT):
        async with http_server(agent) as port, client(port) as c:
            status, _, got = await c.request("POST", "/events", body(event("e1", 1)))
            assert status == 200 and got["status"] in ("accepted", "charged"), got


async def test_http_one_address_cannot_take_every_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="assets.meter_sources")
    with trio.fail_after(TIMEOUT):
        async with http_server(Agent(), max_connections_per_address=2) as port:
            async with client(port) as first, client(port) as second:
                assert (await first.request("GET", "/health"))[0] == 200
                assert (await second.request("GET", "/health"))[0] == 200
                for _ in range(3):
                    async with client(port) as extra:
                        answer = bytearray()
                        while data := await extra.stream.receive_some(1000):
                            answer += data
                        head, _, payload = bytes(answer).partition(b"\r\n\r\n")
                        assert head.startswith(b"HTTP/1.1 503")
                        assert "too many connections" in json.loads(payload)["error"]
                assert (await first.request("GET", "/health"))[0] == 200  # still served
            # the two slots are free again once the server saw them close
            for _ in range(100):
                async with client(port) as again:
                    try:
                        if (await again.request("GET", "/health"))[0] == 200:
                            break
                    except Exception:  # refused while the server catches up
                        await trio.sleep(0.01)
            else:
                raise AssertionError("the slots were never given back")
    floods = [m for m in caplog.messages if "further ones refused" in m]
    assert len(floods) == 1, floods  # logged once for the minute, not per connection
