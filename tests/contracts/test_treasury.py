"""The community treasury and its governed part on a network deployed by `deploy()` (embedded
chain): the treasury is owned by the timelock, pays out only by a passed proposal, refuses every
bad payout with its custom error changing nothing, and `treasuryFeePpm` (0 at deployment) is set
only by governance within its bound. Both calls are ordinary."""

from __future__ import annotations

import pytest
from eth_account import Account

from channels.chain.artifacts import load_artifact
from channels.chain.deploy import deploy_contract
from channels.chain.errors import ChainError
from channels.core.types import Address
from tests.governance.govfix import EURO, GovEnv, address_of, make_env

ZERO = Address(b"\x00" * 20)


@pytest.fixture(scope="module")
def env() -> GovEnv:
    return make_env()


def _treasury(env: GovEnv) -> Address:
    assert env.deployment.treasury is not None
    return env.deployment.treasury


def _balances(env: GovEnv, *accounts: Address) -> list[int]:
    client = env.chain(env.founders[0])
    return [int(client.token_balance(a)) for a in (_treasury(env), *accounts)]


def _direct(env: GovEnv, contract: str, to: Address, function: str, *args: object) -> None:
    abi = load_artifact(contract).abi
    env.connection.transact(
        env.founders[0], to, abi.function(function).encode_call(args), abi, f"{contract}.{function}"
    )


def test_deployed_owned_by_the_timelock_with_no_part(env: GovEnv) -> None:
    gov = env.gov()
    abi = load_artifact("Treasury").abi
    for function, expected in (
        ("governance", env.deployment.timelock),
        ("token", env.deployment.token),
    ):
        raw = env.connection.call(
            _treasury(env), abi.function(function).encode_call(()), abi, function
        )
        assert Address(abi.function(function).decode_result(raw)[0]) == expected
    status = gov.treasury()
    assert (status.address, status.balance, status.fee_ppm, status.payouts) == (
        _treasury(env), 0, 0, (),
    )  # fmt: skip
    calls = gov.calls
    assert gov.classify([calls.set_treasury_fee_ppm(1)]) is False  # ordinary
    assert gov.classify([calls.pay_out(address_of(env.founders[1]), 1, "x")]) is False


def test_the_part_is_set_only_by_governance_within_its_bound(env: GovEnv) -> None:
    gov = env.gov()
    parameters = env.deployment.parameters
    assert parameters is not None
    with pytest.raises(ChainError, match="NetworkParametersNotGovernance"):
        _direct(env, "NetworkParameters", parameters, "setTreasuryFeePpm", 1_000)
    assert gov.treasury_fee_ppm() == 0
    with pytest.raises(ChainError, match="NetworkParametersTreasuryFeeOutOfRange"):
        env.pass_([gov.calls.set_treasury_fee_ppm(200_001)], "Too much")
    assert gov.treasury_fee_ppm() == 0
    env.pass_([gov.calls.set_treasury_fee_ppm(200_000)], "The most")
    assert gov.treasury_fee_ppm() == 200_000
    env.pass_([gov.calls.set_treasury_fee_ppm(25_000)], "2.5%")
    assert gov.treasury_fee_ppm() == 25_000
    described = gov.calls.describe(gov.calls.set_treasury_fee_ppm(25_000))
    assert described == "pay 2.5% of every hub's fee income to the treasury"


def test_pay_out_only_by_a_passed_proposal(env: GovEnv) -> None:
    gov = env.gov()
    treasury = _treasury(env)
    env.chain(env.founders[0]).transfer_token(treasury, 7 * EURO)  # a deposit: a plain transfer
    recipient = address_of(Account.from_key(b"\x42" * 32))
    before = _balances(env, recipient)
    assert before == [7 * EURO, 0]
    with pytest.raises(ChainError, match="TreasuryNotGovernance"):
        _direct(env, "Treasury", treasury, "payOut", recipient, EURO, "mine")
    for call, error in (
        (gov.calls.pay_out(ZERO, EURO, "nobody"), "TreasuryZeroRecipient"),
        (gov.calls.pay_out(recipient, 0, "nothing"), "TreasuryZeroAmount"),
        (gov.calls.pay_out(recipient, 7 * EURO + 1, "too much"), "TreasuryAmountAboveBalance"),
    ):
        with pytest.raises(ChainError, match=error):
            env.pass_([call], f"Refused: {error}")
        assert _balances(env, recipient) == before  # nothing moved
    assert gov.treasury().payouts == ()
    call = gov.calls.pay_out(recipient, 3 * EURO, "community grant")
    assert gov.calls.describe(call).startswith("pay €3.000000 from the treasury to 0x")
    env.pass_([call], "Community grant")
    assert _balances(env, recipient) == [4 * EURO, 3 * EURO]
    status = gov.treasury()
    [payout] = status.payouts
    assert (payout.to, payout.amount, payout.reason) == (recipient, 3 * EURO, "community grant")
    assert status.balance == 4 * EURO
    # the gas of payOut alone, as the timelock runs it
    abi = load_artifact("Treasury").abi
    data = abi.function("payOut").encode_call((recipient, EURO, "community grant"))
    timelock = env.deployment.timelock
    assert timelock is not None
    # the timelock holds no ether: give it some so that the node accepts the estimate's gas price
    env.connection.transact(env.founders[0], timelock, b"", abi, "gas", value=10**18)
    gas = env.connection.estimate(timelock, treasury, data, abi, "Treasury.payOut", 1_000_000)
    assert gas is not None and gas < 60_000
    print(f"gas of payOut: {gas:,}")


def test_a_treasury_without_token_or_owner_is_refused(env: GovEnv) -> None:
    artifact = load_artifact("Treasury")
    for token, owner in ((ZERO, env.deployment.timelock), (env.deployment.token, ZERO)):
        with pytest.raises(ChainError, match="TreasuryZeroAddress"):
            deploy_contract(env.connection, env.founders[0], artifact, token, owner)
