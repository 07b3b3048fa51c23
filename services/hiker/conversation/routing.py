"""Meta's Conversation Routing: another app may own a user's thread, and the bot stays silent.

When a business connects more than one app to a number, Meta gives each user's thread one owner
(developers.facebook.com/documentation/business-messaging/whatsapp/conversation-routing/). Hiker
follows it through the handoff store (``core.ownership``), as for every other way in, with the
reason ``ROUTING_REASON``:
- ``control_taken`` (``messaging_handovers``, sent to the previous owner): another app took the
  thread. It is theirs, with no end Meta names, so for the longest a handoff lasts
  (``MAX_HANDOFF_SECONDS``, 24 h: the customer service window closes before it anyway);
- a ``standby`` message: Meta copies a thread's activity to the apps that do not own it
  ("Standby copies are delivered only for threads your app does not own", Conversation Routing
  troubleshooting), so it too says another app owns it. It is recorded, never answered: a
  service message from this app would take the thread from its owner (Standby webhooks page);
- control comes back by ``control_passed`` (sent to the new owner), or, since a release names
  no owner and sends no notice, by the user's next message arriving on the ``messages`` field:
  "Primary (thread owner): an inbound messages webhook ... May you reply? Yes" (Prepare for
  Conversation Routing). Both end only a handoff routing began, never an agent's.
"""

from __future__ import annotations

import logging
from typing import Final, Protocol

from hiker.conversation.answering import Conversations
from hiker.conversation.metrics import ConversationMetrics
from hiker.core.contracts import ControlChanged, MessageReceived
from hiker.core.ownership import MAX_HANDOFF_SECONDS, Ownership

log = logging.getLogger(__name__)

# The reason a conversation owned through Conversation Routing is recorded with, and its way in.
ROUTING_REASON: Final = "conversation routing"
ROUTING: Final = "routing"


class RoutedOwnership(Protocol):
    """Where routing writes who owns a conversation (``core.ownership.OwnershipStore``)."""

    async def hand_to_person(
        self,
        phone_number_id: str,
        user: str,
        *,
        seconds: float,
        reason: str,
        now: float,
        lengthen_only: bool = False,
        way: str = "api",
    ) -> Ownership: ...

    async def give_back(
        self,
        phone_number_id: str,
        user: str,
        *,
        now: float,
        way: str = "api",
        only_reason: str | None = None,
    ) -> bool: ...


def routing_owned(owner: Ownership, now: float) -> bool:
    """Whether another app owns the conversation through Conversation Routing at ``now``."""
    return owner.human(now) and owner.reason == ROUTING_REASON


def gives_back(event: MessageReceived, owner: Ownership, now: float) -> bool:
    """Whether ``event`` says the thread came back: a user's message Meta delivered on the
    ``messages`` field (to the owner) after another app took the thread. One the user sent
    before that (a delivery that came late) says nothing."""
    if event.standby or not routing_owned(owner, now) or owner.until is None:
        return False
    taken_at = owner.until - MAX_HANDOFF_SECONDS
    return event.timestamp >= int(taken_at)


class ConversationRouting:
    """What a Conversation Routing notice or a standby message does to who owns a thread."""

    def __init__(
        self,
        ownership: RoutedOwnership | None,
        conversations: Conversations,
        metrics: ConversationMetrics,
    ) -> None:
        self._ownership = ownership
        self._conversations = conversations
        self._metrics = metrics

    async def on_control(self, event: ControlChanged) -> None:
        """``taken``: another app owns the thread from when the notice came (a redelivery
        writes the same); ``passed``: it is this app's again."""
        if self._ownership is None:
            log.warning("a routing notice came but this conversation service cannot write it")
            return
        pnid, user = event.phone_number_id, await self._user(event)
        if event.control == "taken":
            await self._ownership.hand_to_person(
                pnid,
                user,
                seconds=MAX_HANDOFF_SECONDS,
                reason=ROUTING_REASON,
                now=event.received_at,
                way=ROUTING,
            )
            self._metrics.handoffs.labels(ROUTING).inc()
            log.info("another app took the thread: the bot stays silent", extra={"user": user})
            return
        back = await self._give_back(pnid, user, event.received_at)
        log.info("the thread was passed to this app", extra={"user": user, "ended": back})

    async def given_back(self, event: MessageReceived, now: float) -> None:
        """The user's message came on the ``messages`` field: the thread is back
        (``gives_back``)."""
        await self._give_back(event.phone_number_id, event.user, now)
        log.info("the thread came back: the bot answers again", extra={"wamid": event.wamid})

    async def on_standby(self, event: MessageReceived, owner: Ownership, now: float) -> None:
        """A standby copy of the user's message: another app owns the thread. Noted once, when
        nothing says so yet (a notice missed, or a thread that was never this app's)."""
        if owner.human(now) or self._ownership is None:
            return
        await self._ownership.hand_to_person(
            event.phone_number_id,
            event.user,
            seconds=MAX_HANDOFF_SECONDS,
            reason=ROUTING_REASON,
            now=now,
            lengthen_only=True,
            way=ROUTING,
        )
        self._metrics.handoffs.labels(ROUTING).inc()
        log.info("a standby copy: another app owns the thread", extra={"wamid": event.wamid})

    async def _give_back(self, pnid: str, user: str, now: float) -> bool:
        if self._ownership is None:
            return False
        return await self._ownership.give_back(
            pnid, user, now=now, way=ROUTING, only_reason=ROUTING_REASON
        )

    async def _user(self, event: ControlChanged) -> str:
        # A notice may name the user by phone number while the conversation moved to their
        # business-scoped id (``conversation.identity``): it belongs where the conversation is.
        activity = await self._conversations.last_activity(event.phone_number_id, event.user)
        if activity is not None and activity.moved_to is not None:
            return activity.moved_to
        return event.user
