"""The permissioned chain profile (Besu QBFT / GoQuorum style) and `cise token`.

`cise chain --block-time 2 --gas-price 0 --accounts 4 --founders 2` runs as a real process: blocks
come every 2 s and never per transaction, gas is free, only the founders are members; `cise token`
mints, transfers and reads balances on it, refusing bad input before sending anything; a command
keeps working while another tool sends with the same key. Then free gas through the real client
code: an account that never held ether opens, pays and closes a channel on anvil, and sends on
ganache (which has no zero-base-fee mode, see `test_ganache_free_gas_is_legacy_only`). And the
zero-fee corner cases of sending: a lost transaction goes out again as the same bytes, and a nonce
another tool takes between our read and our send is followed by a new one.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3

from channels.chain.client import Web3ChainClient, ordered
from channels.chain.connection import Connection, Fees, Receipt
from channels.chain.deploy import ALL_ROLES, deploy
from channels.chain.nodes import open_anvil, open_ganache, rpc_call
from channels.codec.eip712 import cooperative_close_digest
from channels.core.types import Address, ChannelId, to_checksum
from channels.signer import LocalSigner
from cise.main import main
from cise.network import load_network
from tests.integration.chain_env import make_env
from tests.integration.test_signals import assert_clean_stop, spawn
from tests.integration.test_txmanager_anvil import Run, _until

pytestmark = pytest.mark.node

BLOCK_TIME = 2
FOUNDER, NON_FOUNDER = 1, 3  # of the 4 dev accounts, 0 and 1 are founders
SENDER = 2  # a non-founder: it only moves tokens


@dataclass
class ProfileChain:
    file: Path
    url: str
    addr: dict[int, str]
    keys: tuple[bytes, ...]
    lines: list[str]


@pytest.fixture(scope="module")
def profile_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProfileChain]:
    """`cise chain` in the permissioned profile, as a process; stopped (SIGTERM, clean) at the end."""
    tmp = tmp_path_factory.mktemp("profile")
    file = tmp / "network.json"
    argv = ["chain", "--block-time", str(BLOCK_TIME), "--gas-price", "0", "--accounts", "4",
            "--founders", "2", "--port", "0", "--network-file", str(file)]  # fmt: skip
    with spawn(argv, tmp) as chain:
        url = chain.wait_line("anvil at ").split()[2].rstrip(",")
        chain.wait_line("Ctrl-C stops the node")
        keys = load_network(file).dev_keys
        addr = {i: to_checksum(Address(LocalSigner(k).address)) for i, k in enumerate(keys)}
        yield ProfileChain(file, url, addr, keys, list(chain.lines))
        assert_clean_stop(chain, signal.SIGTERM)


def _cise(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _head(url: str) -> tuple[int, int]:
    block: Any = rpc_call(url, "eth_getBlockByNumber", ["latest", False], timeout=5.0)
    return int(block["number"], 16), int(block["timestamp"], 16)


def _nonce(url: str, address: str) -> int:
    return int(str(rpc_call(url, "eth_getTransactionCount", [address, "pending"], timeout=5.0)), 16)


def test_profile_blocks_every_2_s_free_gas_and_only_founders_are_members(
    profile_chain: ProfileChain, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    chain = profile_chain
    assert any("a block every 2 s" in line and "free gas" in line for line in chain.lines)
    assert any("founding members: dev accounts 0..1" in line for line in chain.lines)
    assert rpc_call(chain.url, "eth_gasPrice", []) == "0x0"
    assert rpc_call(chain.url, "eth_getBlockByNumber", ["latest", False])["baseFeePerGas"] == "0x0"  # type: ignore[index]
    start_block, _ = _head(chain.url)
    started = time.monotonic()
    network = ["--network", str(chain.file), "--data-dir", str(tmp_path)]

    # a member-only action by a non-founder: refused with the reason before anything is sent
    # (not even the deposit's approve: the open is run as a call first)
    held = _token_balance(chain, chain.addr[NON_FOUNDER])
    sent = rpc_call(chain.url, "eth_getTransactionCount", [chain.addr[NON_FOUNDER], "pending"])
    code, _, err = _cise(capsys, "channel", *network, "--account", str(NON_FOUNDER),
                         "open", chain.addr[0], "--deposit", "1")  # fmt: skip
    assert code == 2 and "ChannelManagerNotMember" in err and "Traceback" not in err, err
    assert _token_balance(chain, chain.addr[NON_FOUNDER]) == held
    assert (
        rpc_call(chain.url, "eth_getTransactionCount", [chain.addr[NON_FOUNDER], "pending"]) == sent
    )

    # a founder's open works (approve + open: two transactions, mined at the interval)
    code, out, err = _cise(capsys, "channel", *network, "--account", str(FOUNDER),
                           "open", chain.addr[0], "--deposit", "1")  # fmt: skip
    assert code == 0 and "opened channel" in out, err
    time.sleep(2 * BLOCK_TIME + 0.5)
    # blocks only every 2 s: the transactions (an approve and an open) made none of their own
    elapsed = time.monotonic() - started
    end_block, _ = _head(chain.url)
    assert rpc_call(chain.url, "anvil_getAutomine", []) is False
    assert 2 <= end_block - start_block <= elapsed / BLOCK_TIME + 1.5, (start_block, end_block)


def test_token_mint_transfer_balance_and_refusals(
    profile_chain: ProfileChain, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = profile_chain
    net = ["--network", str(chain.file)]
    fresh = to_checksum(Address(LocalSigner(Account.create().key).address))

    # not the minter: refused before sending
    nonce = _nonce(chain.url, chain.addr[FOUNDER])
    code, _, err = _cise(capsys, "token", "mint", fresh, "5", *net, "--account", str(FOUNDER))
    assert code == 2 and "does not hold MINTER_ROLE" in err and "nothing was sent" in err, err
    assert _nonce(chain.url, chain.addr[FOUNDER]) == nonce

    code, out, err = _cise(capsys, "token", "mint", fresh, "2.5", *net, "--account", "0")
    assert code == 0 and "minted €2.500000" in out, err

    # short balance: refused before sending
    held = _token_balance(chain, chain.addr[NON_FOUNDER])
    too_much = f"{Decimal(held + 1) / 1_000_000}"
    nonce = _nonce(chain.url, chain.addr[NON_FOUNDER])
    code, _, err = _cise(capsys, "token", "transfer", fresh, too_much, *net,
                         "--account", str(NON_FOUNDER))  # fmt: skip
    assert code == 2 and f"less than the €{Decimal(held + 1) / 1_000_000:,.6f}" in err, err
    assert "nothing was sent" in err and _nonce(chain.url, chain.addr[NON_FOUNDER]) == nonce

    code, out, err = _cise(capsys, "token", "transfer", fresh, "1.25", *net, "--account", "2")
    assert code == 0 and "sent €1.250000" in out, err
    code, out, err = _cise(capsys, "token", "balance", fresh, *net)
    assert code == 0, err
    assert f"{fresh}: €3.750000 (3750000 units); ether 0 wei" in out


def test_a_nonce_taken_by_another_tool_loses_nothing(
    profile_chain: ProfileChain, tmp_path: Path
) -> None:
    """While `cise token transfer` runs (a transaction every 2-second block), another web3 client
    sends with the same key as fast as it can: every transaction of both lands, once."""
    chain = profile_chain
    key = chain.keys[SENDER]
    other = Web3(Web3.HTTPProvider(chain.url, request_kwargs={"timeout": 5.0}))
    sender = Account.from_key(key)
    target = chain.addr[0]
    before = _token_balance(chain, target)
    argv = [sys.executable, "-m", "cise.main", "token", "transfer", target, "0.5",
            "--network", str(chain.file), "--account", str(SENDER)]  # fmt: skip
    stderr_path = tmp_path / "transfer.err"
    with stderr_path.open("w") as err_file:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=err_file, stdin=subprocess.DEVNULL, text=True
        )
        hashes: list[HexBytes] = []
        try:
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                nonce = other.eth.get_transaction_count(sender.address, "pending")
                tx = {"to": sender.address, "value": 0, "gas": 21_000, "nonce": nonce,
                      "chainId": other.eth.chain_id, "maxFeePerGas": 0,
                      "maxPriorityFeePerGas": 0}  # fmt: skip
                signed = sender.sign_transaction(tx)
                with contextlib.suppress(Exception):
                    hashes.append(other.eth.send_raw_transaction(signed.raw_transaction))
                time.sleep(0.1)
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        out = process.stdout.read() if process.stdout else ""
    err = stderr_path.read_text()
    assert "Traceback" not in err, err
    assert hashes, "the other tool sent nothing while the command ran"
    for tx_hash in hashes:  # every transaction of the other tool lands
        receipt = other.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1
    mined = other.eth.get_transaction_count(sender.address, "latest")
    if code == 0:
        assert "sent €0.500000" in out
        assert _token_balance(chain, target) == before + 500_000
    else:
        assert "nonce" in err.lower(), err  # a clear message naming what happened
        assert _token_balance(chain, target) == before
    assert mined == other.eth.get_transaction_count(sender.address, "pending")


def _token_balance(chain: ProfileChain, address: str) -> int:
    network = load_network(chain.file)
    connection = Connection.from_url(chain.url)
    reader = Web3ChainClient(connection, network.deployment, Account.create())
    return int(reader.token_balance(Address(bytes.fromhex(address[2:]))))


def test_an_account_without_ether_opens_pays_and_closes_on_free_gas() -> None:
    """anvil as a free-gas chain (gas price 0, base fee 0, 2-second blocks): an account that never
    held ether approves, opens, pays and cooperatively closes through `Web3ChainClient`."""
    with open_anvil(accounts=2, block_time=BLOCK_TIME, gas_price=0, base_fee=0) as node:
        connection = Connection.from_url(node.url, node.private_keys)
        assert connection.current_fees() == Fees(0, 0)  # EIP-1559, detected, zero
        deployer = Account.from_key(node.private_keys[0])
        payer_key = bytes(Account.create().key)
        payer_address = Address(LocalSigner(payer_key).address)
        payee_key = node.private_keys[1]
        payee_address = Address(LocalSigner(payee_key).address)
        founders = {
            Address(LocalSigner(node.private_keys[0]).address): ALL_ROLES,
            payer_address: ALL_ROLES,
            payee_address: ALL_ROLES,
        }
        rpc_call(node.url, "evm_setAutomine", [True], timeout=10.0)  # set-up: a block each
        deployment = deploy(connection, deployer, 5, founding_members=founders)
        Web3ChainClient(connection, deployment, deployer).mint(payer_address, 1_000_000)
        rpc_call(node.url, "evm_setIntervalMining", [BLOCK_TIME], timeout=10.0)

        payer = Web3ChainClient.from_key(connection, deployment, payer_key)
        assert connection.eth_balance(payer_address) == 0
        payer.approve(400_000)
        channel_id, receipt = payer.open_channel(payee_address, 400_000)
        assert receipt.event("ChannelOpened").args["deposit"] == 400_000
        # the payment: 150,000 to the payee in the final split both sign
        domain = payer.domain()
        p1, p2 = ordered(payer_address, payee_address)
        split = {payer_address: 250_000, payee_address: 150_000}
        digest = cooperative_close_digest(domain, channel_id, split[p1], split[p2])
        signatures = {
            payer_address: LocalSigner(payer_key).sign_digest(digest),
            payee_address: LocalSigner(payee_key).sign_digest(digest),
        }
        payer.cooperative_close(
            ChannelId(channel_id), p1, p2, split[p1], split[p2], signatures[p1], signatures[p2]
        )
        held = {a: int(payer.token_balance(a)) + int(payer.balance_of(a)) for a in split}
        assert held == {payer_address: 850_000, payee_address: 150_000}
        assert connection.eth_balance(payer_address) == 0  # it never needed any
        transactions = connection.w3.eth.get_transaction_count(
            Web3.to_checksum_address(to_checksum(payer_address))
        )
        assert transactions == 3


def test_ganache_free_gas_is_legacy_only() -> None:
    """ganache has no zero-base-fee option (on shanghai its base fee starts at 1 gwei and decays);
    the closest it allows is a legacy (pre-London) chain with gas price 0 and 2-second blocks, on
    which the CISE contracts (compiled for shanghai, PUSH0) cannot run: there an account that
    never held ether sends through `Connection` with gasPrice 0, legacy detected from the node."""
    with open_ganache(accounts=1, block_time=BLOCK_TIME, gas_price=0, hardfork="berlin") as node:
        connection = Connection.from_url(node.url, node.private_keys)
        assert connection.current_fees() == Fees(0, None)
        account = Account.create()
        receipt = connection.transact(account, b"\x11" * 20, b"", _no_abi(), "transfer", value=0)
        assert receipt.block_number > 0
        mined = connection.w3.eth.get_transaction(HexBytes(receipt.transaction_hash))
        assert (
            mined["gasPrice"] == 0
            and connection.eth_balance(bytes.fromhex(account.address[2:])) == 0
        )
    with open_ganache(accounts=1, block_time=BLOCK_TIME, gas_price=0) as node:
        connection = Connection.from_url(node.url, node.private_keys)
        fees = connection.current_fees()  # shanghai: EIP-1559 detected, its base fee above 0
        assert fees.priority_fee is not None and fees.price > 0


def _no_abi() -> Any:
    from channels.chain.artifacts import load_artifact

    return load_artifact("Token").abi


@pytest.mark.timeout(120)
async def test_a_stalled_zero_fee_transaction_goes_out_again_as_the_same_bytes(
    tmp_path: Path,
) -> None:
    """On free gas a replacement cannot pay more: a transaction the node lost from its pool is
    sent again as the same signed bytes (same hash), not re-signed, and lands once."""
    with open_anvil(gas_price=0, base_fee=0) as node:
        env = make_env(Connection.from_url(node.url, node.private_keys), "anvil")
        assert env.connection.current_fees() == Fees(0, 0)
        sender = env.alice.client.account.address
        before = env.connection.account_nonce(sender)
        rpc_call(node.url, "evm_setAutomine", [False], timeout=5.0)  # blocks only when mined here
        run = Run(env, tmp_path / "alice.sqlite", stall_blocks=2)
        (key,) = run.submit(1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run.service.run_commits)
            nursery.start_soon(run.manager.run)
            await _until(lambda: _pooled(node.url, sender) is not None, 30)
            first = _pooled(node.url, sender)
            rpc_call(node.url, "anvil_dropAllTransactions", [], timeout=5.0)  # the node lost it
            with trio.fail_after(60):
                while run.manager.pending:
                    rpc_call(node.url, "anvil_mine", ["0x1"], timeout=5.0)
                    await trio.sleep(0.3)
            await run.service.commit_now()
            nursery.cancel_scope.cancel()
        run.store.close()
        mined = run.outcomes[key]
        assert isinstance(mined, Receipt)
        assert "0x" + mined.transaction_hash.hex() == first  # the same bytes went out again
        assert run.manager.replacements == 0
        assert env.connection.account_nonce(sender) == before + 1  # one transaction, not two


def _pooled(url: str, sender: str) -> str | None:
    """The hash of `sender`'s transaction in anvil's pool, if one is there."""
    content: Any = rpc_call(url, "txpool_content", [], timeout=5.0)
    by_nonce = {k.lower(): v for k, v in content.get("pending", {}).items()}.get(sender.lower())
    if not by_nonce:
        return None
    return str(next(iter(by_nonce.values()))["hash"])


def test_send_signs_again_when_another_tool_takes_the_nonce_between_read_and_send() -> None:
    """Another tool sends with the same key right after `Connection.send` read the pending count:
    the node refuses ours (same nonce, same zero fee), and `send` signs it again on the next
    nonce; both land, once each."""
    with open_anvil(accounts=2, gas_price=0, base_fee=0) as node:
        rpc_call(node.url, "evm_setAutomine", [False], timeout=5.0)  # both wait in the pool
        connection = Connection.from_url(node.url)
        account = Account.from_key(node.private_keys[1])
        before = connection.account_nonce(account.address)
        eth: Any = connection.w3.eth
        read = eth.get_transaction_count
        theirs: list[str] = []

        def read_then_the_other_tool_sends(address: Any, block: Any = "latest") -> int:
            count = int(read(address, block))
            if not theirs:  # the other tool, between our read and our send
                tx = {"to": account.address, "value": 0, "gas": 21_000, "nonce": count,
                      "chainId": connection.chain_id, "maxFeePerGas": 0,
                      "maxPriorityFeePerGas": 0}  # fmt: skip
                raw = account.sign_transaction(tx).raw_transaction
                theirs.append(str(rpc_call(node.url, "eth_sendRawTransaction", ["0x" + raw.hex()])))
            return count

        eth.get_transaction_count = read_then_the_other_tool_sends
        sent = connection.send(account, b"\x11" * 20, b"", _no_abi(), "transfer", gas=30_000)
        rpc_call(node.url, "anvil_mine", ["0x1"], timeout=5.0)
        ours = connection.wait(sent)
        other = connection.w3.eth.get_transaction_receipt(HexBytes(theirs[0]))
        assert other["status"] == 1 and ours.block_number == int(other["blockNumber"])
        assert connection.account_nonce(account.address) == before + 2  # both, once each
