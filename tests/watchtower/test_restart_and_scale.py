"""A tower killed during a challenge period acts in time after its restart (its state is in sqlite);
200 channels closed in one block are all answered within their challenge period; requests with bad
signatures or stale nonces are refused with clear errors and change nothing. Embedded and anvil."""

from __future__ import annotations

from pathlib import Path

import msgspec
import trio

from channels.codec.eip712 import Domain
from channels.core.state import BalanceProof
from channels.core.types import (
    EMPTY_LOCKS_ROOT,
    Address,
    ChannelId,
    Nonce,
    Signature,
    TokenAmount,
    to_checksum,
)
from tests.watchtower.towerfix import (
    CLOSE_GAS,
    OPEN_GAS,
    STEP,
    Actor,
    TowerChain,
    in_one_block,
    manager_send,
    mine_until,
    running_tower,
    slot_of,
    wait_until,
)
from watchtower.client import TowerEndpoint, monitor_request, open_tower_session
from watchtower.core import Refusal
from watchtower.messages import MonitorRequest
from watchtower.store import read_snapshot

REWARD = 500


def _signed_proof(
    partner: Actor, domain: Domain, channel_id: int, nonce: int, transferred: int
) -> BalanceProof:
    bare = BalanceProof(
        ChannelId(channel_id),
        Nonce(nonce),
        TokenAmount(transferred),
        TokenAmount(0),
        EMPTY_LOCKS_ROOT,
    )
    signature = Signature(partner.signer.sign_digest(bare.digest(domain)))
    return msgspec.structs.replace(bare, signature=signature)


def _request(
    guarded: Actor,
    partner: Actor,
    domain: Domain,
    tower: Address,
    channel_id: int,
    nonce: int,
    request_id: int = 1,
    reward: int = REWARD,
) -> MonitorRequest:
    proof = _signed_proof(partner, domain, channel_id, nonce, 1_000 * nonce)
    return monitor_request(
        guarded.signer, domain, proof, partner.address, reward, tower, request_id
    )


def _open_channels(chain: TowerChain, opener: Actor, partner: Actor, count: int) -> list[ChannelId]:
    chain.fund(opener, 10_000_000)
    opened = in_one_block(
        chain,
        [
            lambda: manager_send(opener, "openChannel", partner.address, 10_000, gas=OPEN_GAS)
            for _ in range(count)
        ],
        "ChannelOpened",
    )
    return [ChannelId(e.args["channelId"]) for e in opened]


async def test_a_tower_killed_mid_challenge_period_acts_in_time_after_restart(
    chain: TowerChain, tmp_path: Path
) -> None:
    guarded, partner = chain.actors[0], chain.actors[1]
    domain = guarded.client.domain()
    # channel 1: a tower whose turn comes a few blocks after the close, so it can be killed first
    tower_actor = max(chain.actors[2:], key=lambda a: slot_of(a.address, 1, chain))
    assert slot_of(tower_actor.address, 1, chain) >= 2
    path = tmp_path / "tower.sqlite"
    [channel_id] = _open_channels(chain, partner, guarded, 1)
    async with running_tower(chain, tower_actor, path) as (tower, port):
        await mine_until(chain, lambda: channel_id in tower.channels, "opened", 3)
        async with open_tower_session(
            guarded.signer, TowerEndpoint(tower_actor.address, port)
        ) as s:
            answers = await s.submit([_request(guarded, partner, domain, tower.address, 1, 7)])
        assert len(answers.receipts) == 1
        async with chain.lock:
            await trio.to_thread.run_sync(
                lambda: partner.client.close_channel(
                    channel_id, guarded.address, 0, 0, 0, b"\0" * 32, b""
                )
            )
        # the tower has durably seen the close (confirmed), and its turn has not come
        await mine_until(chain, lambda: tower.channels[channel_id].closer is not None, "seen", 3)
        duty = tower.duties[(channel_id, guarded.address)]
        assert chain.head() < duty.act_at and tower.stats.updates_sent == 0
    # killed (cancelled mid-flight, nothing flushed); blocks go on until its turn has passed
    await chain.mine(duty.act_at + 1 - chain.head())

    def on_chain() -> int:
        return guarded.client.get_balance_proof(channel_id, partner.address, guarded.address).nonce

    assert on_chain() == 0 and read_snapshot(path).channels[channel_id].closer == partner.address
    async with running_tower(chain, tower_actor, path) as (restarted, _):
        await mine_until(chain, lambda: on_chain() == 7, "the restarted tower's update", 5)
        assert chain.head() <= duty.deadline
        await wait_until(lambda: restarted.stats.updates_mined == 1, "its receipt is in")
    assert guarded.client.get_monitor_reward(channel_id, guarded.address, partner.address) == (
        tower_actor.address,
        REWARD,
    )


async def test_200_channels_closing_in_one_block_are_all_answered(
    chain: TowerChain, tmp_path: Path
) -> None:
    guarded, partner, tower_actor = chain.actors[0], chain.actors[1], chain.actors[2]
    domain = guarded.client.domain()
    channels = _open_channels(chain, partner, guarded, 200)
    async with running_tower(chain, tower_actor, tmp_path / "tower.sqlite") as (tower, port):
        await mine_until(chain, lambda: all(c in tower.channels for c in channels), "opened", 3)
        requests = [
            _request(guarded, partner, domain, tower.address, c, 3, request_id=i)
            for i, c in enumerate(channels)
        ]
        async with open_tower_session(
            guarded.signer, TowerEndpoint(tower_actor.address, port)
        ) as s:
            answers = await s.submit(requests)
        assert len(answers.receipts) == 200, answers.refused[:3]
        closes = in_one_block(
            chain,
            [
                lambda c=c: manager_send(
                    partner,
                    "closeChannel",
                    c,
                    guarded.address,
                    0,
                    0,
                    0,
                    b"\0" * 32,
                    b"",
                    gas=CLOSE_GAS,
                )
                for c in channels
            ],
            "ChannelClosed",
        )
        close_block = closes[0].block_number
        settle_block = close_block + chain.deployment.settle_timeout
        # a real chain: blocks come on their own and take whatever was sent meanwhile
        chain.connection.set_automine(False)
        try:
            await mine_until(
                chain,
                lambda: tower.stats.updates_mined == 200,
                "200 updates",
                chain.deployment.settle_timeout,
                block_s=0.5,  # a busy shared CI machine: half a second a block (real chains: 1-12 s)
            )
        finally:
            chain.connection.set_automine(True)
        assert chain.head() <= settle_block
        assert tower.stats.closes_seen >= 200 and tower.stats.missed == 0
        assert tower.stats.updates_sent == 200  # each once: none sent twice, none stood down
        for channel_id in channels:
            proof = guarded.client.get_balance_proof(channel_id, partner.address, guarded.address)
            assert proof.nonce == 3


async def test_bad_signatures_and_stale_nonces_are_refused_and_change_nothing(
    chain: TowerChain, tmp_path: Path
) -> None:
    guarded, partner, tower_actor, mallory = chain.actors[:4]
    domain = guarded.client.domain()
    [channel_id] = _open_channels(chain, partner, guarded, 1)
    path = tmp_path / "tower.sqlite"
    async with running_tower(chain, tower_actor, path) as (tower, port):
        await mine_until(chain, lambda: channel_id in tower.channels, "opened", 3)
        me = tower.address

        def request(nonce: int, request_id: int, **swap: object) -> MonitorRequest:
            good = _request(guarded, partner, domain, me, channel_id, nonce, request_id)
            return msgspec.structs.replace(good, **swap)

        forged_proof = _signed_proof(mallory, domain, channel_id, 9, 9_000)
        async with open_tower_session(guarded.signer, TowerEndpoint(me, port)) as session:
            first = await session.submit([request(5, 1)])
            assert [r.nonce for r in first.receipts] == [5]
            before = read_snapshot(path)  # read by another connection: durable when answered
            assert before.guards[(channel_id, guarded.address)].nonce == 5
            answers = await session.submit(
                [
                    request(4, 2),  # stale
                    _request(guarded, partner, domain, me, channel_id, 5, 3, REWARD + 1),
                    request(9, 4, partner_signature=forged_proof.signature),  # not the partner's
                    request(9, 5, monitor_signature=mallory.signer.sign_digest(b"\x01" * 32)),
                    request(9, 6, partner_signature=b"\x00" * 65),  # malformed
                    request(9, 7, watchtower=partner.address),  # names another tower
                    request(9, 8, channel_id=channel_id + 1),  # no such channel
                ]
            )
            assert answers.receipts == []
            codes = {r.request_id: (r.code, r.held_nonce) for r in answers.refused}
            assert codes == {
                2: (Refusal.STALE_NONCE.value, 5),
                3: (Refusal.STALE_NONCE.value, 5),
                4: (Refusal.WRONG_SIGNER.value, 5),
                5: (Refusal.WRONG_SIGNER.value, 5),
                6: (Refusal.BAD_SIGNATURE.value, 5),
                7: (Refusal.WRONG_WATCHTOWER.value, 5),
                8: (Refusal.UNKNOWN_CHANNEL.value, 0),
            }
            reasons = {r.request_id: r.reason for r in answers.refused}
            assert "not above the nonce 5" in reasons[2]
            assert f"not by the partner {to_checksum(partner.address)}" in reasons[4]
            status = await session.status()
        with trio.fail_after(STEP):
            await tower.wait_committed()
        after = read_snapshot(path)
        assert after.guards == before.guards and after.submitted == before.submitted
        assert [(e.channel_id, e.nonce, e.state) for e in status.entries] == [
            (channel_id, 5, "open")
        ]
        assert tower.stats.refused == {
            "stale-nonce": 2,
            "wrong-signer": 2,
            "bad-signature": 1,
            "wrong-watchtower": 1,
            "unknown-channel": 1,
        }
