"""Gas per operation (full transaction gasUsed, steady state). Run with -s to see the table.

Steady state = the manager already holds tokens and has a channel counter > 0 (deploy_chain does both),
the opener approved a finite allowance, and the internal balances credited are already non-zero.
"""

from cm_support import SETTLE_TIMEOUT
from eth_utils import keccak

from channels.codec.eip712 import lock_hash
from channels.core.locktree import LockTree

OPEN_WITH_DEPOSIT_MAX = 75_000
COOPERATIVE_CLOSE_MAX = 50_000
AMOUNT = 100_000_000  # EUR 100


def test_gas_per_operation(chain, pair):
    p1, p2 = pair
    gas: dict[str, int] = {}
    cm = chain.cm.functions
    # Internal balances already non-zero, as for a hub or a returning user.
    gas["deposit_to_balance"] = chain.tx(cm.depositToBalance(AMOUNT), p1).gasUsed
    chain.tx(cm.depositToBalance(AMOUNT), p2)
    gas["withdraw_from_balance"] = chain.tx(cm.withdrawFromBalance(1, p1.address), p1).gasUsed

    # Open with an ERC20 deposit, top up, co-signed withdraw, cooperative close.
    receipt = chain.tx(cm.openChannel(p2.address, AMOUNT), p1)
    gas["open_with_deposit"] = receipt.gasUsed
    channel_id = chain.events(receipt, "ChannelOpened")[0]["channelId"]
    gas["open_from_balance"] = chain.tx(cm.openChannelFromBalance(p2.address, 1000), p1).gasUsed
    gas["deposit"] = chain.tx(cm.setTotalDeposit(channel_id, p1.address, AMOUNT), p2).gasUsed
    gas["deposit_from_balance"] = chain.tx(
        cm.setTotalDepositFromBalance(channel_id, p2.address, AMOUNT + 1), p1
    ).gasUsed
    expiry = chain.block + 10
    sigs = [chain.sign_withdraw(s, channel_id, p1, 1000, expiry) for s in (p1, p2)]
    gas["withdraw"] = chain.tx(
        cm.withdraw(channel_id, p1.address, p2.address, 1000, expiry, *sigs), p1
    ).gasUsed
    b1, b2 = AMOUNT - 999, AMOUNT
    sigs = [chain.sign_coop(s, channel_id, b1, b2) for s in (p1, p2)]
    gas["cooperative_close_after_withdraw"] = chain.tx(
        cm.cooperativeClose(channel_id, p1.address, p2.address, b1, b2, *sigs), p2
    ).gasUsed

    channel_id = chain.open(p1, p2, AMOUNT)
    sigs = [chain.sign_coop(s, channel_id, AMOUNT - 5, 5) for s in (p1, p2)]
    gas["cooperative_close"] = chain.tx(
        cm.cooperativeClose(channel_id, p1.address, p2.address, AMOUNT - 5, 5, *sigs), p2
    ).gasUsed

    # Unilateral: close with the partner's proof, update with the closer's, settle, unlock.
    channel_id = chain.open(p1, p2, AMOUNT)
    secret = b"\x5e" * 32
    expiration = chain.block + 1000
    tree, slot = LockTree().insert(lock_hash(500, expiration, keccak(secret)))
    gas["close"] = chain.close(
        p2, p1, channel_id, nonce=9, transferred=7000, locked=500, locks_root=tree.root
    ).gasUsed
    sig = chain.sign_proof(p2, channel_id, 4, 2000)
    gas["update"] = chain.tx(
        cm.updateBalanceProof(channel_id, p2.address, 4, 2000, 0, b"\0" * 32, sig), p1
    ).gasUsed
    gas["register_secret"] = chain.tx(cm.registerSecret(secret), p2).gasUsed
    chain.mine(SETTLE_TIMEOUT)
    gas["settle"] = chain.settle(channel_id, p1, p2).gasUsed
    lock = (500, expiration, keccak(secret))
    gas["unlock"] = chain.tx(
        cm.unlock(channel_id, p1.address, p2.address, lock, slot, tree.proof(slot)), p2
    ).gasUsed

    print("\ngas per operation (tx gasUsed):")
    for name, used in gas.items():
        print(f"  {name:34} {used:>8,}")
    assert gas["open_with_deposit"] <= OPEN_WITH_DEPOSIT_MAX
    assert gas["cooperative_close"] <= COOPERATIVE_CLOSE_MAX
