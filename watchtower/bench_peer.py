"""The client process of `cise bench watchtower`: builds MonitorRequests, streams them to a tower.

`python -m watchtower.bench_peer '<json>'` with the tower's address and port, the network's domain,
the guarded party's and the partner's keys, the channel ids and how many requests to send. It
builds every request first (the partner signs each balance proof, the guarded party each request:
nonces rise round-robin over the channels), then connects, sends them in frames of `frame` with at
most `window` frames unanswered, and prints one JSON line: how many were accepted and refused, and
the seconds from the first frame sent to the last answer (an answer means its requests are durable
at the tower). A bench helper, not a tool: it trusts its arguments.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import msgspec
import trio

from channels.codec.eip712 import Domain
from channels.core.state import BalanceProof
from channels.core.types import EMPTY_LOCKS_ROOT, Address, ChannelId, Nonce, Signature, TokenAmount
from channels.signer import LocalSigner
from watchtower.client import TowerEndpoint, monitor_request, open_tower_session
from watchtower.messages import MonitorRequest


def build_requests(
    guarded: LocalSigner,
    partner: LocalSigner,
    domain: Domain,
    tower: Address,
    channels: list[int],
    count: int,
    reward: int,
) -> list[MonitorRequest]:
    """`count` requests, nonces rising round-robin over `channels` (each proof pays 1,000 more)."""
    requests = []
    for index in range(count):
        channel_id = channels[index % len(channels)]
        nonce = index // len(channels) + 1
        bare = BalanceProof(
            ChannelId(channel_id),
            Nonce(nonce),
            TokenAmount(1_000 * nonce),
            TokenAmount(0),
            EMPTY_LOCKS_ROOT,
        )
        signature = Signature(partner.sign_digest(bare.digest(domain)))
        proof = msgspec.structs.replace(bare, signature=signature)
        requests.append(
            monitor_request(
                guarded, domain, proof, Address(partner.address), reward, tower, index + 1
            )
        )
    return requests


async def stream(
    guarded: LocalSigner,
    endpoint: TowerEndpoint,
    requests: list[MonitorRequest],
    frame: int,
    window: int,
) -> dict[str, Any]:
    """Send `requests` in frames, `window` unanswered at most; the counts and the wall time."""
    frames = [requests[i : i + frame] for i in range(0, len(requests), frame)]
    accepted = refused = 0
    codes: dict[str, int] = {}
    limit = trio.Semaphore(window)
    async with open_tower_session(guarded, endpoint) as session:
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            for chunk in frames:
                await limit.acquire()

                async def send(chunk: list[MonitorRequest] = chunk) -> None:
                    nonlocal accepted, refused
                    try:
                        answers = await session.submit(chunk)
                    finally:
                        limit.release()
                    accepted += len(answers.receipts)
                    refused += len(answers.refused)
                    for refusal in answers.refused:
                        codes[refusal.code] = codes.get(refusal.code, 0) + 1

                nursery.start_soon(send)
        seconds = trio.current_time() - started
    return {
        "requests": len(requests),
        "accepted": accepted,
        "refused": refused,
        "refused_codes": codes,
        "seconds": seconds,
        "frames": len(frames),
    }


def main(argv: list[str]) -> int:
    params = json.loads(argv[1])
    domain = Domain(int(params["chain_id"]), bytes.fromhex(params["manager"]))
    guarded = LocalSigner(bytes.fromhex(params["guarded_key"]))
    partner = LocalSigner(bytes.fromhex(params["partner_key"]))
    tower = Address(bytes.fromhex(params["tower"]))
    built = time.perf_counter()
    requests = build_requests(
        guarded, partner, domain, tower, params["channels"], params["count"], params["reward"]
    )
    build_seconds = time.perf_counter() - built
    result = trio.run(
        stream,
        guarded,
        TowerEndpoint(tower, int(params["port"])),
        requests,
        int(params["frame"]),
        int(params["window"]),
    )
    result["build_seconds"] = build_seconds
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
