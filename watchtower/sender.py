"""The tower's bulk update sender: check, sign and send many updates in three round trips.

`UpdateSender.check_and_send(proofs)` (synchronous: the service runs it in a worker thread under
its chain lock) does, for a batch of updates the core decided:

1. one JSON-RPC batch (`channels.chain.batch_rpc`): the tower account's next nonce (pending
   transactions counted), the fees, and an eth_call of every updateBalanceProofFor from the
   tower's account on the latest block. An update whose call reverts (another tower or the guarded
   party already submitted that nonce or a higher one, or the period is over) is not sent: it is
   reported `stood_down` with the decoded `ChainError`, and costs no gas.
2. every update that passed is signed locally (`channels.chain.raw_tx`, coincurve) with a nonce
   assigned here: first any nonce a previous batch's rejected send left unused below a taken one (a
   hole, which would hold every later transaction back), then the next ones counting up from
   max(the last one assigned + 1, the node's pending count).
3. one JSON-RPC batch of eth_sendRawTransaction, without waiting for any to be mined.

`wait_mined(sent)` then polls the receipts of all of them in one request a poll (bounded by the
connection's receipt timeout); a reverted one is replayed with eth_call to name its error.

Nonces: a nonce is given to one signed transaction only, and assigned again only when the node
answered that transaction with an error (it holds nothing at that nonce). When a send batch goes
unanswered as a whole, nothing is known of its transactions: the sender forgets its own count and
reads the node's pending count next time (which counts whatever the node did take), so no nonce is
given twice. The tower's account must send nothing else (nothing else in CISE sends from it).

It must never send an update its caller did not hand it, never send one whose check reverted,
and never wait for a transaction to be mined while the caller holds its chain lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from channels.chain.batch_rpc import ChainBatch, MinedReceipt
from channels.chain.client import Web3ChainClient
from channels.chain.connection import SentTransaction
from channels.chain.errors import ChainError, chain_error_from, is_revert
from channels.chain.raw_tx import sign_transaction
from channels.core.types import to_checksum
from channels.signer import LocalSigner
from watchtower.core import GuardedProof

log = logging.getLogger(__name__)

FUNCTION = "updateBalanceProofFor"
RECEIPT_POLL_S = 0.1  # one request for all receipts a poll
# node answers meaning the nonce is in use after all: the sender's count is wrong, read it again
_NONCE_TAKEN = ("nonce too low", "already known", "replacement", "nonce has already been used")


@dataclass(slots=True)
class SendReport:
    """What became of each update handed to `check_and_send`."""

    sent: list[tuple[GuardedProof, SentTransaction]] = field(default_factory=list)
    stood_down: list[tuple[GuardedProof, ChainError]] = field(default_factory=list)
    failed: list[tuple[GuardedProof, Exception]] = field(default_factory=list)


class UpdateSender:
    """Checks, signs and sends a tower's updates in bulk (see the module docstring)."""

    def __init__(
        self,
        client: Web3ChainClient,
        signer: LocalSigner,
        gas: int,
        batch: ChainBatch | None = None,
    ) -> None:
        if bytes(client.address) != signer.address:
            raise ValueError("the chain client and the signer act for different accounts")
        self.client = client
        self.signer = signer
        self.gas = gas
        self.batch = batch or ChainBatch.for_connection(client.connection)
        self._next_nonce: int | None = None  # None: read the node's pending count
        self._holes: list[int] = []  # nonces below a taken one whose send the node refused

    def calldata(self, proof: GuardedProof) -> bytes:
        """The updateBalanceProofFor call of `proof`."""
        return self.client.manager_abi.function(FUNCTION).encode_call(
            (
                proof.channel_id,
                proof.partner,
                proof.guarded,
                proof.nonce,
                proof.transferred,
                proof.locked,
                proof.locks_root,
                proof.partner_signature,
                proof.reward,
                proof.monitor_signature,
            )
        )

    def check_and_send(self, proofs: Sequence[GuardedProof]) -> SendReport:
        """Check every update, send those that pass (none waits for another to be mined).
        Raises (`BatchTransportError` or the node's failure) when the node could not be asked or
        a send batch went unanswered: the caller then treats every update as not sent."""
        report = SendReport()
        if not proofs:
            return report
        abi, manager = self.client.manager_abi, self.client.deployment.manager
        function = f"ChannelManager.{FUNCTION}"
        datas = [self.calldata(proof) for proof in proofs]
        prepared, checks = self.batch.prepare(self.signer.address, manager, datas)
        passing: list[tuple[GuardedProof, bytes]] = []
        for proof, data, check in zip(proofs, datas, checks, strict=True):
            if not isinstance(check, Exception):
                passing.append((proof, data))
            elif is_revert(check):
                report.stood_down.append((proof, chain_error_from(check, abi, function)))
            else:
                report.failed.append((proof, check))
        if not passing:
            return report
        holes = sorted(self._holes)
        start = max(self._next_nonce or 0, prepared.nonce)
        fresh = list(range(start, start + max(0, len(passing) - len(holes))))
        nonces = (holes + fresh)[: len(passing)]
        chain_id = self.client.connection.chain_id
        signed = [
            sign_transaction(
                self.signer, chain_id=chain_id, nonce=nonce, gas=self.gas, fees=prepared.fees,
                to=manager, data=data,
            )
            for nonce, (_, data) in zip(nonces, passing, strict=True)
        ]  # fmt: skip
        try:
            answers = self.batch.send_raw([tx.raw for tx in signed])
        except Exception:
            # nothing known of this batch: count from what the node holds, forget the holes
            self._next_nonce, self._holes = None, []
            raise
        accepted: list[int] = []
        refused: list[int] = []
        resync = False
        sender = to_checksum(self.signer.address)
        for (proof, data), nonce, tx, answer in zip(passing, nonces, signed, answers, strict=True):
            if isinstance(answer, Exception):
                refused.append(nonce)
                report.failed.append((proof, answer))
                resync = resync or any(text in str(answer).lower() for text in _NONCE_TAKEN)
                continue
            accepted.append(nonce)
            params = {
                "from": sender, "to": to_checksum(manager), "data": data, "value": 0,
                "nonce": nonce, "gas": self.gas, **prepared.fees.as_params(),
            }  # fmt: skip
            report.sent.append((proof, SentTransaction(tx.transaction_hash, params, abi, function)))
        if resync:
            self._next_nonce, self._holes = None, []
        else:
            # every nonce from `start` up is free but those accepted now; a refused one below the
            # highest accepted is a hole, filled first next time
            self._next_nonce = max(start, max(accepted) + 1) if accepted else start
            unused = holes[len(passing) :]
            self._holes = unused + [nonce for nonce in refused if nonce < self._next_nonce]
        return report

    def wait_mined(
        self, sent: Sequence[tuple[GuardedProof, SentTransaction]]
    ) -> list[tuple[GuardedProof, ChainError | None]]:
        """Poll the receipts of `sent` (one request a poll) until each is mined or the
        connection's receipt timeout passed; each mined one with None, or the `ChainError` it
        reverted with. One not seen mined in time is left out (the caller sends it again later)."""
        connection = self.client.connection
        deadline = time.monotonic() + connection.receipt_timeout
        waiting = list(sent)
        results: list[tuple[GuardedProof, ChainError | None]] = []
        while waiting:
            try:
                receipts = self.batch.receipts([tx.transaction_hash for _, tx in waiting])
            except Exception as exc:  # the node failed for a moment: poll again until the deadline
                log.warning("reading receipts failed: %s: %s", type(exc).__name__, exc)
                receipts = [None] * len(waiting)
            still: list[tuple[GuardedProof, SentTransaction]] = []
            for (proof, tx), receipt in zip(waiting, receipts, strict=True):
                if receipt is None:
                    still.append((proof, tx))
                else:
                    results.append((proof, self._outcome(tx, receipt)))
            waiting = still
            if not waiting:
                break
            if time.monotonic() > deadline:
                for proof, tx in waiting:
                    log.warning(
                        "update of channel %d (0x%s) not seen mined within %.0f s",
                        proof.channel_id,
                        tx.transaction_hash.hex(),
                        connection.receipt_timeout,
                    )
                break
            time.sleep(RECEIPT_POLL_S)
        return results

    def _outcome(self, tx: SentTransaction, receipt: MinedReceipt) -> ChainError | None:
        if receipt.status == 1:
            return None
        try:
            self.client.connection.call(
                self.client.deployment.manager,
                tx.params["data"],
                tx.abi,
                tx.function,
                sender=self.signer.address,
            )
        except ChainError as exc:
            exc.transaction_hash, exc.gas_used = tx.transaction_hash, receipt.gas_used
            return exc
        except Exception as exc:  # the replay itself failed: still a revert, unnamed
            return ChainError("Reverted", function=tx.function, detail=str(exc)[:500])
        return ChainError(
            "Reverted",
            function=tx.function,
            transaction_hash=tx.transaction_hash,
            gas_used=receipt.gas_used,
            detail="mined with status 0 but the replay on the new state did not revert",
        )


__all__ = ["RECEIPT_POLL_S", "SendReport", "UpdateSender"]
