"""An asset agent on the synthetic hub network (no chain: channels open by synthetic events),
for the asset tests: a hub, the asset, users and the asset's beneficiaries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from assets.agent import AssetAgent, AssetConfig
from assets.ledger_store import LedgerStore
from assets.tariff import Tariff
from channels.agent import ChargePolicy
from channels.bench.synthetic import address_of
from channels.codec.eip712 import Domain
from channels.codec.keccak import keccak
from channels.core.splits import Split
from tests.hub.netfix import Net, running_net

ASSET_ID = keccak(b"washing machine 1")
REGISTRY_DOMAIN = Domain(chain_id=1337, verifying_contract=b"\x42" * 20)
BENEFICIARIES = ("manufacturer", "maintenance", "detergent", "financier")
PPM = {"manufacturer": 400_000, "maintenance": 250_000, "detergent": 150_000, "financier": 200_000}
USERS = ("user-1", "user-2")
TARIFF = Tariff(kind="cycle", price=2_500_003, max_units=1)  # €2.500003: odd, so shares round


def split(version: int = 1, ppm: dict[str, int] = PPM) -> Split:
    ordered = sorted(ppm, key=lambda n: address_of(n))
    return Split(version, tuple(address_of(n) for n in ordered), tuple(ppm[n] for n in ordered))


@dataclass
class AssetNet:
    net: Net
    asset: AssetAgent
    ledger: LedgerStore
    cancel: trio.CancelScope


def config(**overrides: object) -> AssetConfig:
    users = {address_of(u) for u in USERS}
    settings: dict[str, object] = {
        "asset_id": ASSET_ID,
        "domain": REGISTRY_DOMAIN,
        "tariff": TARIFF,
        "split": split(),
        "known_user": lambda user: user in users,
        "charge_timeout": 5.0,
        "clock": lambda: 2_000_000_000.0,
    }
    settings.update(overrides)
    return AssetConfig(**settings)  # type: ignore[arg-type]


@asynccontextmanager
async def running_asset(
    tmp: Path,
    *,
    extra: Sequence[str] = (),
    accept_charge: ChargePolicy | None = None,
    **overrides: object,
) -> AsyncIterator[AssetNet]:
    """The network with the asset agent running on it (its ledger in `tmp`); every user pays
    every charge unless `accept_charge` says otherwise."""
    names = ["asset", *USERS, *BENEFICIARIES, *extra]
    policy = {"accept_charge": accept_charge} if accept_charge is not None else {}
    ledger = LedgerStore(tmp / "asset-ledger.sqlite")
    try:
        async with running_net(tmp, names, **policy) as net, trio.open_nursery() as nursery:
            asset = AssetAgent(net.agents["asset"], ledger, config(**overrides))
            await nursery.start(asset.run)
            yield AssetNet(net, asset, ledger, nursery.cancel_scope)
            nursery.cancel_scope.cancel()
    finally:
        ledger.close()  # after every task that could use it has ended
