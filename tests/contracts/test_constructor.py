"""Deployment of Token and ChannelManager, and the settle-timeout setter behind governance."""

import pytest
from cm_support import error_data, load_artifact, revert_data
from eth_tester.exceptions import TransactionFailed

ZERO_ADDRESS = "0x" + "00" * 20


def deploy_reverts(chain, name, *args):
    artifact = load_artifact(name)
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor(*args).build_transaction(
        {"from": chain.admin.address, "gas": 5_000_000}
    )
    with pytest.raises(TransactionFailed) as info:
        chain.w3.eth.call(tx)
    return revert_data(info.value), artifact["abi"]


def test_deployed_constants(chain):
    f = chain.cm.functions
    assert f.token().call() == chain.token.address
    assert (f.MIN_SETTLE_TIMEOUT().call(), f.MAX_SETTLE_TIMEOUT().call()) == (5, 1_000_000)
    assert (f.LOCKS_TREE_DEPTH().call(), f.MAX_PENDING_LOCKS().call()) == (9, 512)
    name, version, chain_id, contract = chain.cm.functions.eip712Domain().call()[1:5]
    assert (name, version, chain_id, contract) == (
        "CISE",
        "1",
        chain.w3.eth.chain_id,
        chain.cm.address,
    )


@pytest.mark.parametrize("timeout", [0, 4, 1_000_001])
def test_rejects_settle_timeout_out_of_range(chain, timeout):
    data, abi = deploy_reverts(chain, "ChannelManager", chain.token.address, timeout)
    assert data == error_data(abi, "ChannelManagerSettleTimeoutOutOfRange", timeout, 5, 1_000_000)


def test_rejects_zero_token(chain):
    data, abi = deploy_reverts(chain, "ChannelManager", ZERO_ADDRESS, 10)
    assert data == error_data(abi, "ChannelManagerZeroToken")


def test_token_rejects_zero_admin(chain):
    data, abi = deploy_reverts(chain, "Token", "T", "T", ZERO_ADDRESS)
    assert data == error_data(abi, "TokenZeroAdmin")


@pytest.mark.parametrize("timeout", [5, 1_000_000])
def test_internal_setter_accepts_the_bounds(chain, timeout):
    receipt = chain.tx(chain.harness.functions.setSettleTimeoutForTest(timeout), chain.admin)
    assert chain.events(receipt, "SettleTimeoutSet", chain.harness) == [{"settleTimeout": timeout}]
    assert chain.harness.functions.settleTimeout().call() == timeout


def test_internal_setter_rejects_out_of_range(chain):
    chain.assert_reverts(
        chain.harness.functions.setSettleTimeoutForTest(4),
        chain.admin,
        "ChannelManagerSettleTimeoutOutOfRange",
        4,
        5,
        1_000_000,
        contract=chain.harness,
    )
