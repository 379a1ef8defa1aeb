"""`cise api serve`: the HTTP API and dashboard of a network (docs/api.md).

Builds `api.sources.ApiSources` from a network file (the node it names, its contracts), the asset
ledgers given with `--ledger ID=PATH`, the hub's settlement file (`--hub-account NAME|ADDRESS|INDEX`:
`<data-dir>/settlement-<hub>.sqlite`, or `--settlement PATH`) and the watchtower files in the
data folder (`watchtower-*.sqlite`, and any `--tower PATH`), then serves `api.app.create_app`
until interrupted, printing `api listening on http://127.0.0.1:PORT` first (`--host`, and HTTPS
with `--tls`: `https://HOST:PORT`, then the certificate file a client pins).

Parsing and wiring only. It must never write anything but its TLS pair (the API reads; its one
signed write is `api.auth`'s), never serve plain HTTP off the loopback, and on a bad argument
change nothing and exit with status 2 (`CliError`).
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import Any

import trio

from api.app import create_app
from api.server import serve
from api.sources import ApiSources
from channels.codec.keccak import keccak
from channels.tls import TlsConfig
from cise.accounts import account_address, account_argument
from cise.channel_cmd import connect
from cise.errors import CliError
from cise.lifecycle import run_until_stopped
from cise.metrics import add_service_options, head_board, run_with_metrics
from cise.network import NetworkFileError, load_network
from cise.settle_cmd import settlement_path
from cise.tls_options import DEFAULT_HOST, add_host_argument, load_tls, show, wants_tls

DEFAULT_NETWORK_FILE = ".cise/network.json"


def add_parsers(sub: Any) -> None:
    api = sub.add_parser("api", help="the HTTP API and dashboard")
    ops = api.add_subparsers(dest="op", required=True, metavar="OP")
    serve_parser = ops.add_parser("serve", help="serve the API and dashboard until Ctrl-C")
    serve_parser.add_argument("--network", default=DEFAULT_NETWORK_FILE, help="network file")
    serve_parser.add_argument("--data-dir", default=".cise", help="the parties' data folder")
    serve_parser.add_argument(
        "--ledger",
        action="append",
        default=[],
        metavar="ID=PATH",
        help="an asset's ledger file (ID: 0x asset id, or the name it was registered by); repeat",
    )
    serve_parser.add_argument(
        "--hub-account",
        type=account_argument,
        default=None,
        metavar="NAME|ADDRESS|INDEX",
        help="the hub's account (a keystore name or an address, or a dev index on a dev "
        "network; no password needed): its settlement file <data-dir>/settlement-<hub>.sqlite",
    )
    serve_parser.add_argument("--settlement", default=None, help="the hub's settlement file")
    serve_parser.add_argument(
        "--tower", action="append", default=[], metavar="PATH", help="a watchtower file; repeat"
    )
    add_host_argument(serve_parser)
    serve_parser.add_argument("--port", type=int, default=8700, help="port on --host (0: any)")
    serve_parser.add_argument(
        "--tls",
        action="store_true",
        help="HTTPS (always off the loopback) with the certificate of --tls-account (default: "
        "--hub-account), made in --data-dir on first use; clients pin that certificate",
    )
    serve_parser.add_argument(
        "--tls-account",
        type=account_argument,
        default=None,
        metavar="NAME|ADDRESS|INDEX",
        help="whose certificate (tls-0x<address>.crt in --data-dir) the API shows",
    )
    add_service_options(serve_parser)


def parse_ledger(text: str) -> tuple[bytes, str | None, Path]:
    """`ID=PATH` -> (asset id, display name or None, path); `CliError` when malformed."""
    ident, sep, path_text = text.partition("=")
    if not sep or not ident.strip() or not path_text.strip():
        raise CliError(f"--ledger {text!r}: want ID=PATH")
    ident = ident.strip()
    name: str | None = None
    if ident.startswith("0x"):
        if len(ident) != 66:
            raise CliError(f"--ledger {text!r}: an asset id is 0x + 64 hex digits")
        try:
            asset_id = bytes.fromhex(ident[2:])
        except ValueError:
            raise CliError(f"--ledger {text!r}: the asset id is not hex") from None
    else:
        asset_id, name = keccak(ident.encode()), ident  # as `cise asset register NAME` makes it
    path = Path(path_text.strip())
    if not path.is_file():
        raise CliError(f"--ledger {text!r}: no file {path}")
    return asset_id, name, path


def build_sources(args: argparse.Namespace) -> ApiSources:
    """The sources named by the arguments; `CliError` on anything missing or wrong."""
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be 0..65535, got {args.port}")
    if args.hub_account is not None and args.settlement is not None:
        raise CliError("give --hub-account or --settlement, not both")
    ledgers: dict[bytes, Path] = {}
    names: dict[bytes, str] = {}
    for text in args.ledger:
        asset_id, name, path = parse_ledger(text)
        if asset_id in ledgers:
            raise CliError(f"--ledger: asset 0x{asset_id.hex()} given twice")
        ledgers[asset_id] = path
        if name is not None:
            names[asset_id] = name
    try:
        network = load_network(Path(args.network))
    except NetworkFileError as exc:
        raise CliError(str(exc)) from None
    data_dir = Path(args.data_dir)
    settlement: Path | None = None
    if args.settlement is not None:
        settlement = Path(args.settlement)
        if not settlement.is_file():
            raise CliError(f"--settlement: no file {settlement}")
    elif args.hub_account is not None:
        hub = account_address(network, args, option="--hub-account", dest="hub_account")
        settlement = settlement_path(data_dir, hub)
    towers = [Path(t) for t in args.tower]
    for tower in towers:
        if not tower.is_file():
            raise CliError(f"--tower: no file {tower}")
    if data_dir.is_dir():
        # the files `cise watchtower serve` keeps there (`watchtower_cmd.tower_file`)
        towers += sorted(p for p in data_dir.glob("watchtower-*.sqlite") if p not in towers)
    connection = connect(network)
    return ApiSources(
        connection=connection,
        deployment=network.deployment,
        ledgers=ledgers,
        names=names,
        settlement=settlement,
        towers=towers,
        live=None,
    )


async def _serve(
    sources: ApiSources, port: int, host: str = DEFAULT_HOST, tls: TlsConfig | None = None
) -> None:
    """Serve until cancelled (`run_until_stopped` does it at SIGINT or SIGTERM)."""
    app = create_app(sources)
    certificate = None if tls is None else (tls.certificate_path, tls.key_path)
    async with trio.open_nursery() as nursery:
        try:
            bound = await nursery.start(
                partial(serve, app, port=port, host=host, certificate=certificate)
            )
        except* OSError as group:  # the port is taken (hypercorn raises it from its nursery)
            exc: BaseException = group
            while isinstance(exc, BaseExceptionGroup):
                exc = exc.exceptions[0]
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise CliError(f"cannot serve on {show(host)}:{port}: {reason}") from None
        scheme = "http" if tls is None else "https"
        print(f"api listening on {scheme}://{show(host)}:{bound}", flush=True)
        if tls is not None:  # what a client pins
            print(f"api certificate {tls.certificate_path}", flush=True)


def _tls(args: argparse.Namespace) -> TlsConfig | None:
    """The certificate of --tls-account (else --hub-account) when TLS is on; CliError without."""
    if not wants_tls(args.tls, args.host):
        return None
    option, dest = ("--tls-account", "tls_account")
    if args.tls_account is None:
        if args.hub_account is None:
            raise CliError(
                "HTTPS needs a certificate: give --tls-account NAME|ADDRESS|INDEX (or --hub-account)"
            )
        option, dest = ("--hub-account", "hub_account")
    try:
        network = load_network(Path(args.network))
    except NetworkFileError as exc:
        raise CliError(str(exc)) from None
    return load_tls(args.data_dir, account_address(network, args, option=option, dest=dest))


def run(args: argparse.Namespace) -> int:
    tls = _tls(args)
    sources = build_sources(args)
    board = head_board(args, "api", sources.connection.block_number)
    return run_until_stopped(
        run_with_metrics, board, _serve, sources, args.port, args.host, tls, name="api"
    )


__all__ = ["add_parsers", "build_sources", "parse_ledger", "run"]
