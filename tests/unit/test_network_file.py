"""`cise.network`: the `dev` and `code_hashes` fields of a network file.

A file written for a real network (`dev: false`, code hashes, no key) must read back as written;
one that says `dev: false` but holds keys, a malformed hash or a hash for an unknown field must be
refused naming the field; a file written before those fields existed must still read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels.chain.deploy import Deployment
from channels.core.types import Address, BlockNumber
from cise.network import Network, NetworkFileError, load_network

DEPLOYMENT = Deployment(
    31337, Address(b"\x01" * 20), Address(b"\x02" * 20), BlockNumber(3), 20, Address(b"\x03" * 20)
)
KEY = b"\x11" * 32


def _write(tmp_path: Path, raw: dict[str, object]) -> Path:
    path = tmp_path / "network.json"
    path.write_text(json.dumps(raw))
    return path


def test_a_real_network_file_reads_back_as_written(tmp_path: Path) -> None:
    network = Network("http://127.0.0.1:8545", DEPLOYMENT, (), {"channel_manager": b"\xaa" * 32})
    raw = json.loads(network.to_json())
    assert raw["dev"] is False and raw["dev_private_keys"] == []
    assert raw["code_hashes"] == {"channel_manager": "0x" + "aa" * 32}
    loaded = load_network(_write(tmp_path, raw))
    assert loaded == network and not loaded.dev and loaded.path == tmp_path / "network.json"
    dev = Network("http://127.0.0.1:8545", DEPLOYMENT, (KEY,))
    assert json.loads(dev.to_json())["dev"] is True
    assert load_network(_write(tmp_path, json.loads(dev.to_json()))).dev


def test_an_old_file_without_the_new_fields_still_reads(tmp_path: Path) -> None:
    raw = json.loads(Network("http://127.0.0.1:8545", DEPLOYMENT, (KEY,)).to_json())
    del raw["dev"], raw["code_hashes"]
    loaded = load_network(_write(tmp_path, raw))
    assert loaded.dev and loaded.code_hashes == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dev": False, "dev_private_keys": ["0x" + KEY.hex()]}, "dev: false but holds"),
        ({"dev": True, "dev_private_keys": []}, "dev: true but holds no"),
        ({"dev": "yes"}, "'dev' must be true or false"),
        ({"code_hashes": {"channel_manager": "0x1234"}}, "not a 32-byte 0x-hex hash"),
        ({"code_hashes": {"channel_manager": "0x" + "zz" * 32}}, "is not hex"),
        ({"code_hashes": {"wallet": "0x" + "aa" * 32}}, "'wallet', which is not a contract"),
        ({"code_hashes": ["0x" + "aa" * 32]}, "code_hashes must be an object"),
    ],
)
def test_bad_dev_and_code_hash_fields_are_named(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    raw = json.loads(Network("http://127.0.0.1:8545", DEPLOYMENT, ()).to_json())
    raw.update(change)
    with pytest.raises(NetworkFileError, match=message):
        load_network(_write(tmp_path, raw))
