"""One process owns a store: the lock beside it refuses a second writer, naming the owner, and
the OS releases it when the owner dies (SIGKILL), so a restart just works. Read-only opening takes
no lock and writes nothing.

The owner is a real second process (a `python -c` that claims and sleeps): the lock is about
processes, and a fake would not show that the OS drops it on SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from assets.ledger_store import LedgerStore
from channels.codec.eip712 import Domain
from channels.core import state_changes as sc
from channels.core.node import node_transition
from channels.core.state import NodeState
from channels.core.types import Address, BlockNumber
from channels.ownership import StoreInUseError, claim, lock_path, owner_of
from channels.records import core_record_codec
from channels.store import SqliteStore, StoreError
from settlement.store import SettlementStore, SettlementStoreError
from watchtower.store import TowerStore

COMMAND = "cise hub serve --account 4"


@contextmanager
def owned_by_another_process(store: Path) -> Iterator[subprocess.Popen[str]]:
    """A process that claims `store` (recording COMMAND), then sleeps until killed."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from channels.ownership import claim
        claim({str(store)!r}, command={COMMAND!r})
        print("claimed", flush=True)
        time.sleep(120)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "claimed"
        yield process
    finally:
        process.kill()
        process.wait(timeout=30)


def _kill(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def test_a_second_opener_is_refused_with_the_owners_pid_and_the_lock_goes_with_a_sigkill(
    tmp_path: Path,
) -> None:
    path = tmp_path / "party.sqlite"
    with owned_by_another_process(path) as owner:
        with pytest.raises(StoreInUseError) as refused:
            claim(path)
        assert refused.value.owner is not None and refused.value.owner.pid == owner.pid
        assert f"is in use by pid {owner.pid}: {COMMAND}; stop it" in str(refused.value)
        with pytest.raises(StoreInUseError, match=f"pid {owner.pid}"):
            SqliteStore(path, core_record_codec())
        assert not path.exists()  # the refused opener changed nothing
        found = owner_of(path)
        assert found is not None and found.pid == owner.pid
        _kill(owner)
        assert owner_of(path) is None  # the OS dropped the lock with the process
        store = SqliteStore(path, core_record_codec())  # a restart after the crash just works
        try:
            found = owner_of(path)
            assert found is not None and found.pid == os.getpid()
        finally:
            store.close()
    assert owner_of(path) is None
    assert lock_path(path).read_text() == ""  # the record is cleared on release


def test_two_writers_in_one_process_are_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "party.sqlite"
    with SqliteStore(path, core_record_codec()) as first:
        with pytest.raises(StoreInUseError, match=f"pid {os.getpid()}"):
            SqliteStore(path, core_record_codec())
        first.write_snapshot(_node())
    SqliteStore(path, core_record_codec()).close()  # free again once closed


def _node() -> NodeState:
    return NodeState(Address(b"\x01" * 20), Domain(1337, Address(b"\x09" * 20)), BlockNumber(7))


def test_a_read_only_store_reads_beside_the_owner_and_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "party.sqlite"
    codec = core_record_codec()
    with SqliteStore(path, codec) as owner:
        owner.write_snapshot(_node())
        owner.write(sc.Block(BlockNumber(8)))
        before = path.read_bytes(), Path(f"{path}-wal").read_bytes()
        reader = SqliteStore(path, codec, read_only=True)
        try:
            restored = reader.restore(_node(), lambda s, c: node_transition(s, c).new_state)
            assert restored.state.block_number == 8 and restored.replayed == 1
            with pytest.raises(StoreError, match="read-only"):
                reader.write(sc.Block(BlockNumber(9)))
            with pytest.raises(StoreError, match="read-only"):
                reader.write_snapshot(_node())
            owner.write(sc.Block(BlockNumber(9)))  # the owner still writes, unhindered
            again = reader.restore(_node(), lambda s, c: node_transition(s, c).new_state)
            assert again.state.block_number == 9
            found = owner_of(path)
            assert found is not None and found.pid == os.getpid()  # the reader took no lock
        finally:
            reader.close()
        assert owner.last_state_change_id == 2
        assert path.read_bytes() == before[0]
        assert len(Path(f"{path}-wal").read_bytes()) > len(before[1])  # only the owner's write
    with pytest.raises(StoreError, match="no store here"):
        SqliteStore(tmp_path / "none.sqlite", codec, read_only=True)
    assert not (tmp_path / "none.sqlite").exists()


def test_the_settlement_file_has_one_owner_and_takes_round_requests_beside_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "settlement.sqlite"
    hub = SettlementStore(path)
    try:
        with pytest.raises(StoreInUseError, match=f"pid {os.getpid()}"):
            SettlementStore(path)
        requester = SettlementStore(path, requests_only=True)  # `cise settle run`, the API
        try:
            request = requester.request_round(now=1.0)
            assert hub.open_requests() == [request]
            with pytest.raises(SettlementStoreError, match="round requests only"):
                requester.set_status({"running": "1"})
            assert requester.withdraw_request(request)
        finally:
            requester.close()
        reader = SettlementStore(path, read_only=True)
        try:
            with pytest.raises(SettlementStoreError, match="read-only"):
                reader.request_round()
            assert reader.open_requests() == []
        finally:
            reader.close()
    finally:
        hub.close()
    with pytest.raises(SettlementStoreError, match="no settlement file"):
        SettlementStore(tmp_path / "none.sqlite", requests_only=True)
    assert not (tmp_path / "none.sqlite").exists()


def test_the_tower_and_ledger_files_have_one_owner(tmp_path: Path) -> None:
    tower_path = tmp_path / "watchtower.sqlite"
    ledger_path = tmp_path / "ledger.sqlite"
    with owned_by_another_process(tower_path) as tower_owner:
        with pytest.raises(StoreInUseError, match=f"pid {tower_owner.pid}"):
            TowerStore(
                tower_path,
                tower=Address(b"\x02" * 20),
                chain_id=1,
                manager=Address(b"\x03" * 20),
                start_cursor=BlockNumber(0),
            )
        assert not tower_path.exists()
    with owned_by_another_process(ledger_path) as ledger_owner:
        with pytest.raises(StoreInUseError, match=f"pid {ledger_owner.pid}"):
            LedgerStore(ledger_path)
        assert not ledger_path.exists()
        _kill(ledger_owner)
        LedgerStore(ledger_path).close()
