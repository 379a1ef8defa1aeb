"""`cise chain`'s profile options: each bad value named before anything starts."""

from __future__ import annotations

import pytest

from cise.chain_cmd import ChainProfile, profile_argv
from cise.errors import CliError
from cise.main import build_parser


def profile(*argv: str) -> ChainProfile:
    args = build_parser().parse_args(["chain", *argv])
    return ChainProfile.from_options(args.block_time, args.gas_price, args.accounts, args.founders)


def test_the_default_is_the_dev_profile() -> None:
    assert profile() == ChainProfile(None, False, 10, None)


def test_the_permissioned_profile_and_its_detached_argv() -> None:
    chosen = profile("--block-time", "2", "--gas-price", "0", "--accounts", "4", "--founders", "2")
    assert chosen == ChainProfile(2, True, 4, 2)
    assert profile(*profile_argv(chosen)) == chosen  # --detach passes it on unchanged


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--block-time", "0"], "--block-time must be in [1, 60]"),
        (["--block-time", "61"], "--block-time must be in [1, 60]"),
        (["--gas-price", "1"], "--gas-price: only 0"),
        (["--accounts", "0"], "--accounts must be in [1, 100]"),
        (["--accounts", "101"], "--accounts must be in [1, 100]"),
        (["--founders", "0"], "--founders must be in [1, 10]"),
        (["--accounts", "3", "--founders", "4"], "--founders must be in [1, 3]"),
    ],
)
def test_a_bad_option_is_named(argv: list[str], named: str) -> None:
    with pytest.raises(CliError, match=named.replace("[", r"\[").replace("]", r"\]")):
        profile(*argv)
