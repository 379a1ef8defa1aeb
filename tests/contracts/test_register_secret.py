"""ChannelManager.registerSecret: record the block of a secret's first registration."""

from eth_utils import keccak


def test_register_records_block_and_reveals_secret(chain, pair):
    p1, _ = pair
    secret = b"\x42" * 32
    secrethash = keccak(secret)
    assert chain.cm.functions.secretRevealBlock(secrethash).call() == 0
    receipt = chain.tx(chain.cm.functions.registerSecret(secret), p1)
    assert chain.events(receipt, "SecretRegistered") == [
        {"secrethash": secrethash, "secret": secret}
    ]
    assert chain.cm.functions.secretRevealBlock(secrethash).call() == receipt.blockNumber


def test_rejects_second_registration(chain, pair):
    p1, p2 = pair
    secret = b"\x43" * 32
    receipt = chain.tx(chain.cm.functions.registerSecret(secret), p1)
    chain.mine(3)
    chain.assert_reverts(
        chain.cm.functions.registerSecret(secret),
        p2,
        "ChannelManagerSecretAlreadyRegistered",
        keccak(secret),
        receipt.blockNumber,
    )
