"""Local node processes: they start, answer, and are always stopped; failures say why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from channels.chain import nodes
from channels.chain.nodes import NodeStartError, open_anvil, rpc_call, run_node


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_anvil_starts_answers_and_stops() -> None:
    with open_anvil() as node:
        assert rpc_call(node.url, "eth_chainId", []) == hex(node.chain_id)
        assert node.url.startswith("http://127.0.0.1:")
        pid = node.pid
    assert _gone(pid)


def test_a_node_that_dies_reports_its_output() -> None:
    argv = ["sh", "-c", "echo port is taken >&2; exit 3"]
    with (
        pytest.raises(NodeStartError, match="port is taken"),
        run_node("fake", argv, nodes.free_port(), 5.0, ()),
    ):
        pass


def test_a_node_that_never_answers_times_out_and_is_killed() -> None:
    argv = ["sh", "-c", "echo still booting; exec sleep 60"]
    with (
        pytest.raises(NodeStartError, match="still booting"),
        run_node("fake", argv, nodes.free_port(), 0.3, ()),
    ):
        pass


def test_node_modules_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CISE_NODE_MODULES", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"no \.bin"):
        nodes.find_node_modules()
    (tmp_path / ".bin").mkdir()
    assert nodes.find_node_modules() == tmp_path


def test_dev_keys_are_the_well_known_ones() -> None:
    keys = nodes.dev_private_keys(2)
    assert keys[0].hex() == "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
