"""How the core's records are stored and replayed: the one store codec and replay function.

Every shell that logs core state changes (the party shell, the benchmarks, later the services)
uses these, so a record type added to the core is storable everywhere at once. No I/O here.
"""

from __future__ import annotations

import typing
from typing import Any

from channels.core import events as ev
from channels.core import state_changes as sc
from channels.core.node import node_transition
from channels.core.state import NodeState
from channels.store import RecordCodec


def core_record_codec() -> RecordCodec:
    """The store codec for every core state change, event and the node state (snapshots)."""
    return RecordCodec([*typing.get_args(sc.StateChange), *typing.get_args(ev.Event), NodeState])


def replay(node: NodeState, state_change: Any) -> NodeState:
    """The core transition as the store's replay wants it (events were already acted on)."""
    return node_transition(node, state_change).new_state
