"""Redis key names: what one script touches shares a hash tag; the names before tags."""

from __future__ import annotations

from redis.crc import key_slot

from hiker.conversation.state import ConversationStore
from hiker.core.redis_store import Keys
from hiker.sender.pacing import Pacer

PNID = "100000000000001"
USER = "15550001111"


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_a_message_claim_and_its_record_step_share_one_slot() -> None:
    keys = Keys("hiker:")
    store = ConversationStore(None, keys, idle_timeout_seconds=600)  # type: ignore[arg-type]
    step = store.record_step(PNID, USER, "wamid.A", 1.0, 1)
    touched = [keys.claim(PNID, USER, "wamid.A"), *step.keys]
    assert len({slot(k) for k in touched}) == 1
    # The conversation's follow-up claims live beside its state.
    assert slot(keys.followup(PNID, USER, "wamid.A")) == slot(touched[0])


def test_a_send_claim_and_its_pacing_share_the_numbers_slot() -> None:
    keys = Keys("hiker:")
    step = Pacer(keys, 80).reserve_step(PNID)
    assert step is not None
    touched = [keys.sent(PNID, "reply:wamid.A"), *step.keys]
    assert len({slot(k) for k in touched}) == 1
    # A per-user pacing key of that number takes the number's tag, so it may join the script.
    assert slot(f"hiker:pace:{{{PNID}}}:{USER}") == slot(touched[0])


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
    assert Keys("hiker:").legacy(keys.pace(PNID)) is None  # not adopting
