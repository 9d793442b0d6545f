# SPDX-License-Identifier: Apache-2.0
"""messages.py: every reply a rank receives, decoded by the real codec, read as its type."""
import pytest

from orbit_adapter import protocol
from orbit_adapter.messages import Burn, Error, Heartbeat, State, Welcome, reply_from_dict


def round_trip(message):
    return reply_from_dict(protocol.decode(protocol.encode(message)))


def test_each_reply_type_becomes_its_dataclass():
    w = round_trip({"type": "welcome", "run": "r", "rank": 1, "session": "s-1", "version": 1,
                    "mode": "active", "snapshot_every": 4, "max_message_bytes": 65536})
    assert w == Welcome(run="r", rank=1, session="s-1", version=1, mode="active",
                        snapshot_every=4, max_message_bytes=65536)
    s = round_trip({"type": "state", "run": "r", "rank": 0, "step": 9, "state": "WARNING",
                    "basin": "TOKEN_COLLAPSE", "metrics": {"loss": 2.5}})
    assert isinstance(s, State) and s.step == 9 and s.metrics == {"loss": 2.5}
    b = round_trip({"type": "burn", "run": "r", "seq": 3, "state": "WARNING", "basin": "B",
                    "reason": "why", "for_step": 9, "apply_at_step": 11, "expires_after_steps": 50,
                    "lr_scale": 0.5, "rollback_to_step": 4, "skip_batches": 2})
    assert isinstance(b, Burn)
    assert (b.seq, b.apply_at_step, b.expires_after_steps, b.lr_scale) == (3, 11, 50, 0.5)
    assert (b.rollback_to_step, b.skip_batches, b.domain_weights) == (4, 2, None)
    e = round_trip({"type": "error", "code": "not_registered", "message": "say hello first"})
    assert e == Error(code="not_registered", message="say hello first", ref=None)
    assert round_trip({"type": "heartbeat", "run": "r", "rank": 0}) == Heartbeat(run="r", rank=0)


def test_messages_a_rank_is_never_sent_have_no_reply_type():
    assert round_trip({"type": "bye", "run": "r", "rank": 0}) is None


@pytest.mark.parametrize("kept", [
    # what Orbit.state_dict()["pending"] holds: every field but run, unset ones as None
    {"seq": 5, "apply_at_step": 7, "state": "W", "basin": "B", "reason": "x", "for_step": 6,
     "expires_after_steps": 10, "lr_scale": 0.8, "domain_weights": {"code": 2.0},
     "curriculum_phase": None, "loss_weights": None, "rollback_to_step": None,
     "skip_batches": None},
])
def test_a_kept_burn_reads_back_as_it_was_written(kept):
    burn = Burn.from_dict(kept)
    assert burn.to_dict() == kept
