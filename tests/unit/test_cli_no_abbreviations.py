"""No `cise` option may be abbreviated: `--password SECRET` must not be read as `--password-file`
(which would then echo SECRET in its "no such file" error), in any subcommand."""

from __future__ import annotations

import pytest

from cise.main import build_parser


@pytest.mark.parametrize(
    "argv",
    [
        ["channel", "--password", "hunter2", "status"],
        ["hub", "serve", "--password", "hunter2"],
        ["token", "balance", "--passw", "hunter2"],
        ["network", "deploy", "--rpc", "http://127.0.0.1:1", "--out", "x.json", "--new-tok", "E"],
    ],
)
def test_an_abbreviated_option_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2  # refused by the parser: with abbreviations, all parsed
    assert "hunter2" not in capsys.readouterr().out
