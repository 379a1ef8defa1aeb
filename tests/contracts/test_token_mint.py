"""Token: 6 decimals, mint only by MINTER_ROLE."""

from eth_utils import keccak

MINTER_ROLE = keccak(b"MINTER_ROLE")


def test_metadata(chain):
    functions = chain.token.functions
    assert functions.decimals().call() == 6
    assert (functions.name().call(), functions.symbol().call()) == ("CISE Euro", "CEUR")
    assert functions.MINTER_ROLE().call() == MINTER_ROLE


def test_minter_mints(chain):
    user = chain.actors[2]
    supply, before = chain.token.functions.totalSupply().call(), chain.tokens(user)
    receipt = chain.tx(chain.token.functions.mint(user.address, 1_000_000), chain.admin)
    assert chain.events(receipt, "Transfer", chain.token) == [
        {"from": "0x" + "00" * 20, "to": user.address, "value": 1_000_000}
    ]
    assert chain.tokens(user) == before + 1_000_000
    assert chain.token.functions.totalSupply().call() == supply + 1_000_000


def test_granted_minter_mints(chain):
    minter, user = chain.actors[2], chain.actors[3]
    chain.tx(chain.token.functions.grantRole(MINTER_ROLE, minter.address), chain.admin)
    before = chain.tokens(user)
    chain.tx(chain.token.functions.mint(user.address, 5), minter)
    assert chain.tokens(user) == before + 5


def test_rejects_non_minter(chain):
    user = chain.actors[2]
    chain.assert_reverts(
        chain.token.functions.mint(user.address, 1),
        user,
        "AccessControlUnauthorizedAccount",
        user.address,
        MINTER_ROLE,
        contract=chain.token,
    )


def test_rejects_mint_to_zero_address(chain):
    zero = "0x" + "00" * 20
    chain.assert_reverts(
        chain.token.functions.mint(zero, 1),
        chain.admin,
        "ERC20InvalidReceiver",
        zero,
        contract=chain.token,
    )
