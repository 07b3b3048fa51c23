"""What a model may call during a turn: the built-in tools (``handoff``, ``send_buttons``,
``send_list``, ``remind``) and a bot's own functions (``@bot.tool``, ``ai.functions``).

A tool never acts: it answers the model with a short text (what goes in the ``tool`` message)
and records what it asked for in the turn's ``Effects`` (interactive replies, reminders, a
handoff), which the engine carries out once, with the reply. A call that is wrong (arguments
that do not parse, a button title over Meta's 20 characters) raises ``ToolError``: its message
goes back to the model, which may try again; the turn goes on either way.

OpenAI's function-calling shapes (``{"type": "function", "function": {"name", "description",
"parameters"}}``) are from OpenAI's API reference (SDK types), not from Meta.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from hiker.core.actions import (
    BUTTON_ID_MAX,
    BUTTON_TITLE_MAX,
    INTERACTIVE_BODY_MAX,
    LIST_BUTTON_MAX,
    LIST_ROWS_MAX,
    ROW_DESCRIPTION_MAX,
    ROW_ID_MAX,
    ROW_TITLE_MAX,
    SECTION_TITLE_MAX,
    AnyAction,
    InvalidAction,
    parse_action,
)
from hiker.core.ai_model import ToolSpec
from hiker.core.requests import HANDOFF_REASON_MAX, REMIND_MAX_SECONDS, Handoff, Remind

# Reminders the model sets are keyed ``ai:<n>`` (n counts within the turn: two reminders after
# one message need two keys, since a reminder is claimed by message and key). The engine's
# ``on_reminder`` takes the keys ``is_ai_reminder`` accepts; the note is in ``data["note"]``.
REMINDER_KEY: Final = "ai"
# The tools every turn offers; a bot's own may not take these names.
BUILTIN_NAMES: Final = ("handoff", "send_buttons", "send_list", "remind")
# Interactive replies one turn may send: more is a model looping, not a conversation.
MAX_INTERACTIVE: Final = 3


def is_ai_reminder(key: str) -> bool:
    """Whether a reminder's ``key`` is one the model set (``remind``)."""
    return key.startswith(f"{REMINDER_KEY}:")


class ToolError(Exception):
    """What was wrong with a call, said to the model in the ``tool`` message."""


@dataclass(frozen=True)
class ToolContext:
    """Whose turn a tool is called in. A ``@bot.tool`` function gets it by declaring a
    parameter of this type (left out of the schema the model sees). All None in the turn of
    a reminder coming due, which answers no message."""

    phone_number_id: str | None
    user: str | None
    # The newest message of the turn (its wamid).
    wamid: str | None


@dataclass
class Effects:
    """What the tools of one turn asked for, in the order asked."""

    actions: list[AnyAction] = field(default_factory=list)
    reminders: list[Remind] = field(default_factory=list)
    handoff: Handoff | None = None


class Tool(Protocol):
    """A function the model may call: its name, its OpenAI spec, and the call itself."""

    @property
    def name(self) -> str: ...

    def spec(self) -> ToolSpec: ...

    async def call(
        self, arguments: Mapping[str, Any], context: ToolContext, effects: Effects
    ) -> str:
        """The text the model reads back; ToolError when the call is wrong."""
        ...


def function_spec(name: str, description: str, parameters: Mapping[str, Any]) -> ToolSpec:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": dict(parameters)},
    }


Handler = Callable[[Mapping[str, Any], ToolContext, Effects], str]


@dataclass(frozen=True)
class BuiltinTool:
    """One of Hiker's own tools: a hand-written schema and a handler that fills ``Effects``."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    handler: Handler

    def spec(self) -> ToolSpec:
        return function_spec(self.name, self.description, self.parameters)

    async def call(
        self, arguments: Mapping[str, Any], context: ToolContext, effects: Effects
    ) -> str:
        return self.handler(arguments, context, effects)


def _text(arguments: Mapping[str, Any], name: str) -> str:
    value = arguments.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f"{name}: a non-empty string is required")
    return value.strip()


# --- handoff -----------------------------------------------------------------------------


def handoff_tool(minutes: float) -> BuiltinTool:
    """``handoff(reason)``: a person takes the conversation for ``minutes``."""

    def handoff(arguments: Mapping[str, Any], _: ToolContext, effects: Effects) -> str:
        reason = _text(arguments, "reason")[:HANDOFF_REASON_MAX]
        if effects.handoff is None:
            effects.handoff = Handoff(minutes=minutes, reason=reason)
        return (
            "Done: a person of the business takes over this conversation after your reply. "
            "Now tell the user, in one short message, that a person will answer them here."
        )

    return BuiltinTool(
        "handoff",
        "Hand the conversation to a person of the business: when the user asks for a human, "
        "is upset, or needs what you cannot do. The bot stays silent until they are done.",
        {
            "type": "object",
            "properties": {
                "reason": {
                    "type": "string",
                    "maxLength": HANDOFF_REASON_MAX,
                    "description": "Why, in a few words, for the person taking over.",
                }
            },
            "required": ["reason"],
        },
        handoff,
    )


# --- send_buttons and send_list ----------------------------------------------------------


def _add_interactive(effects: Effects, name: str, content: dict[str, Any]) -> str:
    if len(effects.actions) >= MAX_INTERACTIVE:
        raise ToolError(f"at most {MAX_INTERACTIVE} interactive messages in one reply")
    try:
        action = parse_action(name, content)
    except InvalidAction as exc:
        raise ToolError(
            "; ".join(
                f"{'.'.join(str(p) for p in where[1:]) or name}: {problem}"
                for where, problem in exc.problems
            )
        ) from None
    effects.actions.append(action)
    return (
        "Will be sent before your reply. Do not repeat the choices in your reply; "
        "write nothing more unless something else needs saying."
    )


def _option(value: Any) -> Any:
    # Models often write the options as plain titles: each is then its own id.
    return {"id": value, "title": value} if isinstance(value, str) else value


def _send_buttons(arguments: Mapping[str, Any], _: ToolContext, effects: Effects) -> str:
    options = arguments.get("options")
    if not isinstance(options, list):
        raise ToolError("options: a list of {id, title} is required")
    content = {"body": _text(arguments, "body"), "options": [_option(o) for o in options]}
    return _add_interactive(effects, "buttons", content)


def _send_list(arguments: Mapping[str, Any], _: ToolContext, effects: Effects) -> str:
    rows, sections = arguments.get("rows"), arguments.get("sections")
    if (rows is None) == (sections is None):
        raise ToolError("give either rows (one section) or sections, not both and not neither")
    if rows is not None:
        if not isinstance(rows, list):
            raise ToolError("rows: a list of {id, title, description} is required")
        sections = [{"rows": [_option(r) for r in rows]}]
    content = {
        "body": _text(arguments, "body"),
        "button": _text(arguments, "button"),
        "sections": sections,
    }
    return _add_interactive(effects, "list", content)


_OPTION = {
    "type": "object",
    "properties": {
        "id": {
            "type": "string",
            "maxLength": BUTTON_ID_MAX,
            "description": "Comes back when tapped.",
        },
        "title": {"type": "string", "maxLength": BUTTON_TITLE_MAX},
    },
    "required": ["id", "title"],
}
_ROW = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "maxLength": ROW_ID_MAX, "description": "Comes back when chosen."},
        "title": {"type": "string", "maxLength": ROW_TITLE_MAX},
        "description": {"type": "string", "maxLength": ROW_DESCRIPTION_MAX},
    },
    "required": ["id", "title"],
}

SEND_BUTTONS = BuiltinTool(
    "send_buttons",
    "Offer the user 1 to 3 choices as reply buttons (WhatsApp's limits: titles of at most "
    f"{BUTTON_TITLE_MAX} characters, distinct). The user's tap comes back as their next message.",
    {
        "type": "object",
        "properties": {
            "body": {"type": "string", "maxLength": INTERACTIVE_BODY_MAX},
            "options": {"type": "array", "items": _OPTION, "minItems": 1, "maxItems": 3},
        },
        "required": ["body", "options"],
    },
    _send_buttons,
)

SEND_LIST = BuiltinTool(
    "send_list",
    f"Offer the user up to {LIST_ROWS_MAX} choices as a list opened by a button (WhatsApp's "
    f"limits: button text of at most {LIST_BUTTON_MAX} characters, row titles of at most "
    f"{ROW_TITLE_MAX}, descriptions of at most {ROW_DESCRIPTION_MAX}). Give rows, or sections "
    "with titles.",
    {
        "type": "object",
        "properties": {
            "body": {"type": "string", "maxLength": INTERACTIVE_BODY_MAX},
            "button": {"type": "string", "maxLength": LIST_BUTTON_MAX},
            "rows": {"type": "array", "items": _ROW, "minItems": 1, "maxItems": LIST_ROWS_MAX},
            "sections": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string", "maxLength": SECTION_TITLE_MAX},
                        "rows": {"type": "array", "items": _ROW, "minItems": 1},
                    },
                    "required": ["title", "rows"],
                },
                "minItems": 1,
                "maxItems": 10,
            },
        },
        "required": ["body", "button"],
    },
    _send_list,
)


# --- remind ------------------------------------------------------------------------------


def _remind(arguments: Mapping[str, Any], _: ToolContext, effects: Effects) -> str:
    minutes = arguments.get("after_minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int | float):
        raise ToolError("after_minutes: a number of minutes is required")
    if not 1 <= minutes <= REMIND_MAX_SECONDS // 60:
        raise ToolError(
            f"after_minutes: between 1 and {REMIND_MAX_SECONDS // 60} minutes, not {minutes}"
        )
    remind = Remind(
        after_seconds=float(minutes) * 60,
        key=f"{REMINDER_KEY}:{len(effects.reminders) + 1}",
        data={"note": _text(arguments, "note")},
        keep=arguments.get("keep", False) is True,
    )
    effects.reminders.append(remind)
    return f"Reminder set: in {minutes:g} minutes you will be asked to follow up on the note."


REMIND = BuiltinTool(
    "remind",
    "Be called back later to follow up with the user, with a note to yourself of what about. "
    "Unless keep is true, it is dropped when the user writes first.",
    {
        "type": "object",
        "properties": {
            "after_minutes": {
                "type": "number",
                "minimum": 1,
                "maximum": REMIND_MAX_SECONDS // 60,
            },
            "note": {"type": "string", "description": "What to follow up on."},
            "keep": {"type": "boolean", "description": "Even when the user writes first."},
        },
        "required": ["after_minutes", "note"],
    },
    _remind,
)


def builtin_tools(*, handoff_minutes: float) -> list[Tool]:
    """The tools every turn offers."""
    return [handoff_tool(handoff_minutes), SEND_BUTTONS, SEND_LIST, REMIND]


def tools_by_name(tools: list[Tool]) -> dict[str, Tool]:
    """Tools by name; a bot's tool named like another (a built-in) refuses the start."""
    by_name: dict[str, Tool] = {}
    for tool in tools:
        if tool.name in by_name:
            raise ValueError(f"two tools are named {tool.name!r} (the built-ins: handoff, "
                             "send_buttons, send_list, remind)")  # fmt: skip
        by_name[tool.name] = tool
    return by_name
