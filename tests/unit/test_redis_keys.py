"""Redis key names: what one script touches shares a hash tag; the names before tags."""

from __future__ import annotations

from redis.crc import key_slot

from hiker.conversation.state import ConversationStore, Turn
from hiker.core.keys import Keys
from hiker.sender.pacing import Pacer

PNID = "100000000000001"
USER = "15550001111"


def slot(key: str) -> int:
    return key_slot(key.encode())


class _NoRedis:
    """Stands in for the client: building the steps only registers scripts."""

    def register_script(self, script: str) -> None:
        return None


def test_a_message_claim_and_its_steps_share_one_slot() -> None:
    keys = Keys("hiker:")
    store = ConversationStore(_NoRedis(), keys, idle_timeout_seconds=600)  # type: ignore[arg-type]
    record = store.record_step(PNID, USER, "wamid.A", 1.0, 1)
    append = store.append_step(PNID, USER, [Turn("out", "reply:wamid.A", "text", "hi", 1.0)])
    assert append is not None
    touched = [keys.claim(PNID, USER, "wamid.A"), *record.keys, *append.keys]
    assert keys.history(PNID, USER) in touched
    assert len({slot(k) for k in touched}) == 1
    # The conversation's follow-ups and reminders live beside its state.
    assert slot(keys.followup(PNID, USER, "wamid.A")) == slot(touched[0])
    assert slot(keys.reminder(PNID, USER, "wamid.A", "nudge")) == slot(touched[0])


def test_a_send_claim_and_its_pacing_share_the_numbers_slot() -> None:
    keys = Keys("hiker:")
    step = Pacer(keys, 80, user_interval_seconds=6, user_burst=10).reserve_step(PNID, USER)
    assert step is not None
    touched = [keys.sent(PNID, "reply:wamid.A"), *step.keys]
    assert keys.pace_user(PNID, USER) in touched
    assert len({slot(k) for k in touched}) == 1


def test_the_names_keys_had_before_hash_tags() -> None:
    keys = Keys("hiker:", adopt_legacy=True)
    assert keys.legacy(keys.claim(PNID, USER, "wamid.A")) == "hiker:claim:wamid.A"
    assert keys.legacy(keys.conversation(PNID, USER)) == f"hiker:conv:{PNID}:{USER}"
    assert keys.legacy(keys.followup(PNID, USER, "wamid.A")) == (
        f"hiker:followup:{PNID}:{USER}:wamid.A"
    )
    assert keys.legacy(keys.sent(PNID, "reply:wamid.A")) == "hiker:sent:reply:wamid.A"
    assert keys.legacy(keys.pace(PNID)) == f"hiker:pace:{PNID}"
    assert keys.legacy("other:claim:x") is None
    # Kinds that came with hash tags have no older name to adopt.
    for new in (
        keys.history(PNID, USER),
        keys.reminder(PNID, USER, "wamid.A", "nudge"),
        keys.pace_user(PNID, USER),
    ):
        assert keys.legacy(new) is None
    assert Keys("hiker:").legacy(keys.pace(PNID)) is None  # not adopting
