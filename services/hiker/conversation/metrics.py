"""Conversation metrics (names are what the dashboards and alerts query)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hiker.conversation.ai.metrics import AIMetrics

MESSAGE_TYPES: Final = (
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
)


class ConversationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.inbound = Counter(
            "hiker_inbound_messages",
            "Inbound user messages processed (first deliveries only), by message type.",
            ["type"],
            registry=registry,
        )
        self.duplicates = Counter(
            "hiker_duplicates_dropped",
            "Inbound messages dropped because their wamid was already processed.",
            registry=registry,
        )
        self.statuses = Counter(
            "hiker_statuses_received",
            "Status webhooks for messages the business sent, by status.",
            ["status"],
            registry=registry,
        )
        self.webhook_errors = Counter(
            "hiker_webhook_errors",
            "Errors Meta reported in webhooks (value.errors and failed statuses), by code.",
            ["code"],
            registry=registry,
        )
        self.replies = Counter(
            "hiker_replies_emitted",
            "Replies handed to the sender, by the rule that produced them.",
            ["rule"],
            registry=registry,
        )
        self.timers_scheduled = Counter(
            "hiker_timers_scheduled", "Idle timers started.", registry=registry
        )
        self.timers_superseded = Counter(
            "hiker_timers_superseded",
            "Fired idle timers dropped because a newer message arrived meanwhile.",
            registry=registry,
        )
        self.timers_fired = Counter(
            "hiker_timers_fired",
            "Idle timers that came out of their wait queue.",
            registry=registry,
        )
        self.followups = Counter(
            "hiker_followups_emitted",
            "Follow-ups handed to the sender, by form (text, or template outside the window).",
            ["form"],
            registry=registry,
        )
        self.handoffs = Counter(
            "hiker_handoffs",
            "Conversations handed to a person, by the way in (reason: api, action, echo, "
            "routing: another app took the thread through Meta's Conversation Routing).",
            ["reason"],
            registry=registry,
        )
        for way in ("action", "echo", "routing"):
            self.handoffs.labels(way)
        self.skipped = Counter(
            "hiker_sends_skipped",
            "Replies and follow-ups not sent, by kind and reason (window_closed: past the 24 h "
            "customer service window with no template configured; human_owned: a person owns "
            "the conversation).",
            ["kind", "reason"],
            registry=registry,
        )
        self.reminders_set = Counter(
            "hiker_reminders_set",
            "Reminders a responder asked for (Remind).",
            registry=registry,
        )
        self.reminders_fired = Counter(
            "hiker_reminders_fired",
            "Reminders that came due with the user quiet (or kept) and were handed to the "
            "responder's on_reminder.",
            registry=registry,
        )
        self.state_conflicts = Counter(
            "hiker_state_conflicts",
            "Messages answered again because another message of the user changed the "
            "conversation's state first (two replicas at once).",
            registry=registry,
        )
        self.responder_timeouts = Counter(
            "hiker_responder_timeouts",
            "Responder calls cut off at HIKER_RESPONDER_TIMEOUT_SECONDS, by what was answered "
            "(message, reminder): the message or reminder is held and answered again.",
            ["kind"],
            registry=registry,
        )
        self.rules_reloads = Counter(
            "hiker_rules_reloads",
            "Rules file reloads by outcome (applied, rejected).",
            ["outcome"],
            registry=registry,
        )
        self.lateness = Histogram(
            "hiker_timer_lateness_seconds",
            "How long after its due time an idle timer was handled.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.human_owned = Gauge(
            "hiker_conversations_human_owned",
            "Conversations a person owns now (a handoff), sampled from Redis: every replica "
            "reports the same count.",
            registry=registry,
        )
        self.pending = Gauge(
            "hiker_timers_pending",
            "Idle timers waiting in the wait queue (sampled from the broker).",
            registry=registry,
        )
        self.ai = AIMetrics(registry)
        # Zero-valued series from the start: increase() and alerts then see a pod's first event.
        for status in ("sent", "delivered", "read", "played", "failed"):
            self.statuses.labels(status)
        # Meta's codes operators watch for (docs/troubleshooting.md).
        for code in ("131000", "131026", "131047", "131049", "131051", "130472"):
            self.webhook_errors.labels(code)
        for outcome in ("applied", "rejected"):
            self.rules_reloads.labels(outcome)
        for kind in ("reply", "followup", "reminder"):
            self.skipped.labels(kind, "window_closed")
            self.skipped.labels(kind, "human_owned")
        for form in ("text", "template"):
            self.followups.labels(form)
        for kind in ("message", "reminder"):
            self.responder_timeouts.labels(kind)
        # The message types Meta sends most (a tapped button comes as interactive or button).
        for kind in MESSAGE_TYPES:
            self.inbound.labels(kind)
