"""`cise demo` runs to the end with conserved totals, embedded and against anvil and ganache."""

from __future__ import annotations

import pytest

from channels.chain.nodes import LocalNode
from cise.demo import cycle_price, run_demo
from cise.main import main
from cise.money import euro


def test_demo_on_embedded_chain(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo(cycles=60, uses=30, progress=False) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps lines at the terminal width
    assert "conservation check passed" in out
    assert "machine submitted the user's proof" in out
    assert "per-beneficiary income" in out
    assert "every ledger verified" in out
    assert "machine-1: lifecycle" in out and "repair (DP-220 drain pump)" in out
    assert "since the last service event" in out
    assert "reconcile exactly with the ledgers and the channels" in out
    assert "each wallet changed by exactly its payments" in out
    assert "end-of-day settlement: every party signed its withdraw" in out
    assert "machine-1's financing pool" in out and "paid them on chain" in out
    assert "consented split change: machine-2's maintenance share 25% -> 20%" in out
    assert "signed by maintenance (EIP-712 SplitConsent), applied as split version 2" in out


@pytest.mark.node
@pytest.mark.parametrize("kind", ["anvil", "ganache"])
def test_demo_against_a_node(
    kind: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    node: LocalNode = request.getfixturevalue(f"{kind}_node")
    argv = ["demo", "--rpc", node.url, "--cycles", "30", "--uses", "12", "--no-progress"]
    assert main(argv) == 0
    assert "conservation check passed" in capsys.readouterr().out


def test_prices_are_sub_cent_and_euros_exact() -> None:
    prices = [cycle_price(i) for i in range(1000)]
    assert min(prices) >= 2_500 and max(prices) < 10_000  # < €0.01
    assert euro(1) == "€0.000001"
    assert euro(123_456_789) == "€123.456789"


@pytest.mark.parametrize(
    "argv", [["demo", "--cycles", "0"], ["demo", "--cycles", "x"], ["demo", "--uses", "-1"]]
)
def test_demo_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert argv[1] in capsys.readouterr().err
