"""`cise watchtower` refuses bad arguments with a clear error before touching anything (no chain,
no tower file is opened or created)."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels.chain.deploy import Deployment
from channels.chain.nodes import dev_private_keys
from channels.core.types import Address, BlockNumber
from cise.main import main
from cise.network import Network

TOWER = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["watchtower", "serve", "--port", "70000"], "--port"),
        (["watchtower", "serve", "--poll-interval", "0"], "--poll-interval"),
        (["watchtower", "serve", "--min-reward", "0.0000001"], "more than 6 decimals"),
        (["watchtower", "hire", "--tower", "0x12", "--tower-port", "1"], "--tower"),
        (
            ["watchtower", "hire", "--tower", TOWER, "--tower-port", "1", "--reward", "lots"],
            "not an amount",
        ),
        (["bench", "watchtower", "--block-time", "0"], "--block-time"),
    ],
)
def test_bad_arguments_are_clear_errors(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--network", str(tmp_path / "none.json"), "--data-dir", str(tmp_path / "data")]
    assert main(argv + (where if argv[0] == "watchtower" else [])) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_a_stall_of_zero_blocks_is_refused_by_the_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--network", str(tmp_path / "none.json"), "--data-dir", str(tmp_path / "data")]
    with pytest.raises(SystemExit) as exited:
        main(["watchtower", "serve", "--stall-blocks", "0", *where])
    assert exited.value.code == 2
    assert "--stall-blocks: must be positive" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_status_of_a_tower_that_never_ran_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    network = tmp_path / "network.json"
    deployment = Deployment(31337, Address(b"\x01" * 20), Address(b"\x02" * 20), BlockNumber(1), 20)
    network.write_text(Network("http://127.0.0.1:1", deployment, dev_private_keys(4)).to_json())
    argv = ["watchtower", "status", "--network", str(network), "--data-dir", str(tmp_path)]
    assert main(argv) == 2
    assert "no watchtower database" in capsys.readouterr().err
