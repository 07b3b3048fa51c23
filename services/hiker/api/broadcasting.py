"""``POST /v1/broadcasts``, read: a template, its recipients (JSON or a CSV upload) and when to
start; and what a recipient's send is (its key, its command).

A recipient's send id is ``broadcast:<broadcast id>:<seq>``: the sender's idempotency key, and
what Graph is given as ``biz_opaque_callback_data`` so that each status names it. It is fixed
by the broadcast and the recipient's place, so a resumed or replayed broadcast hands the sender
the same key again, and the sender sends it once.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple

import orjson

from hiker.core.actions import InvalidAction, Template, parse_action
from hiker.core.contracts import SendMessage

KEY_PREFIX: Final = "broadcast:"
KIND: Final = "broadcast"
MARKETING_KIND: Final = "marketing"
NAME_MAX: Final = 255
PHONE_NUMBER_ID_MAX: Final = 64
# A phone number, or a business-scoped user id (``US.ENT.`` and up to 128 characters).
RECIPIENT_MAX: Final = 160
# Meta's template body holds at most 1,024 characters, parameters included.
PARAMETER_MAX: Final = 1024
PARAMETERS_MAX: Final = 20
# Problems named in one answer: a file of 100,000 bad lines is not answered with each.
PROBLEMS_SHOWN: Final = 20


class InvalidBroadcast(Exception):
    """What is wrong with a broadcast request, field by field (``(field, message)``)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{w}: {m}" if w else m for w, m in problems))
        self.problems = problems


class Recipient(NamedTuple):
    """A tuple: a request makes 100,000 of them."""

    to: str
    # The template's body parameters for this user ({{1}}, {{2}}, ...), or none.
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class BroadcastRequest:
    phone_number_id: str
    name: str
    template: Template
    recipients: tuple[Recipient, ...]
    # Epoch seconds; None: at once.
    start_at: float | None = None
    # A marketing template (sent to the Marketing Messages API where the api is set up for it).
    marketing: bool = False
    # Recipients named more than once: sent once.
    duplicates: int = 0


def request_hash(body: bytes, content_type: str) -> str:
    """What a repeated Idempotency-Key must ask for again: the same bytes, the same type."""
    return hashlib.sha256(content_type.encode() + b"\n" + body).hexdigest()


def broadcast_id_of(idempotency_key: str) -> str:
    return hashlib.sha256(b"broadcast\n" + idempotency_key.encode()).hexdigest()[:32]


def send_key(broadcast_id: str, seq: int) -> str:
    return f"{KEY_PREFIX}{broadcast_id}:{seq}"


def parse_send_key(key: str | None) -> tuple[str, int] | None:
    """(broadcast id, seq) of a broadcast's send key; None for any other key."""
    if key is None or not key.startswith(KEY_PREFIX):
        return None
    broadcast_id, _, seq = key[len(KEY_PREFIX) :].partition(":")
    if len(broadcast_id) != 32 or not (seq.isascii() and seq.isdigit() and len(seq) < 10):
        return None
    return broadcast_id, int(seq)


def command_for(
    *,
    broadcast_id: str,
    seq: int,
    phone_number_id: str,
    to: str,
    template: dict[str, Any],
    parameters: Sequence[str],
    kind: str,
) -> SendMessage:
    """The sender's command for one recipient: the template with the user's body parameters
    (Meta's template send: ``components: [{"type": "body", "parameters": [{"type": "text",
    "text": ...}]}]``)."""
    content = dict(template)
    if parameters:
        others = [c for c in content.get("components", ()) if c.get("type") != "body"]
        body = {"type": "body", "parameters": [{"type": "text", "text": p} for p in parameters]}
        content["components"] = [*others, body]
    key = send_key(broadcast_id, seq)
    return SendMessage.model_validate(
        {
            "idempotency_key": key,
            "phone_number_id": phone_number_id,
            "to": to,
            "actions": [{"type": "template", **content}],
            "kind": kind,
            "correlation_id": key,
        }
    )


def parse_json(body: bytes) -> BroadcastRequest:
    """``{phone_number_id, name, template: {name, language, components?}, recipients: [{to,
    parameters?}], start_at?, marketing?}``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidBroadcast([("body", "not valid JSON")]) from None
    if not isinstance(data, dict):
        raise InvalidBroadcast([("", "the body must be a JSON object")])
    problems: list[tuple[str, str]] = []
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        problems.append(("", f"unknown fields: {', '.join(unknown)}"))
    raw = data.get("recipients")
    recipients = _Recipients([])
    if not isinstance(raw, list) or not raw:
        problems.append(("recipients", "a non-empty list of {to, parameters} is required"))
    else:
        recipients = _json_recipients(raw, problems)
    return _request(data, recipients, problems)


def parse_csv(body: bytes, query: dict[str, str]) -> BroadcastRequest:
    """A CSV upload: a header line whose first column is ``to``, then one user a line, the
    further columns being the body parameters in order. The rest comes in the query:
    ``phone_number_id``, ``name``, ``template``, ``language``, ``start_at``, ``marketing``."""
    problems: list[tuple[str, str]] = []
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidBroadcast([("body", "a CSV file in UTF-8 is required")]) from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header or header[0].strip().lower() != "to":
        raise InvalidBroadcast([("body", 'the first line is a header whose first column is "to"')])
    recipients = _recipients(
        ((n, row[0].strip(), row[1:]) for n, row in enumerate(rows, 2) if row),
        "line {}",
        problems,
    )
    if not recipients.users and not problems:
        problems.append(("body", "no recipients: one user a line after the header"))
    data: dict[str, Any] = {
        key: value
        for key, value in query.items()
        if key in ("phone_number_id", "name", "start_at", "marketing")
    }
    if "marketing" in data:
        data["marketing"] = data["marketing"].lower() in ("1", "true", "yes")
    data["template"] = {"name": query.get("template"), "language": query.get("language")}
    return _request(data, recipients, problems)


_FIELDS: Final = frozenset(
    {"phone_number_id", "name", "template", "recipients", "start_at", "marketing"}
)


def _json_recipients(raw: list[Any], problems: list[tuple[str, str]]) -> _Recipients:
    def rows() -> Iterable[tuple[int, object, object]]:
        for index, item in enumerate(raw):
            if type(item) is not dict or not item.keys() <= _RECIPIENT_FIELDS:
                problems.append((f"recipients[{index}]", "must be {to, parameters?}"))
                continue
            yield index, item.get("to"), item.get("parameters")

    return _recipients(rows(), "recipients[{}]", problems)


_RECIPIENT_FIELDS: Final = frozenset({"to", "parameters"})


@dataclass(frozen=True)
class _Recipients:
    users: list[Recipient]
    # Named again after their first line: dropped, each user is sent once.
    duplicates: int = 0


def _recipients(
    rows: Iterable[tuple[int, object, object]], where: str, problems: list[tuple[str, str]]
) -> _Recipients:
    """Each row's recipient, checked; ``where`` (a format of the row's number) names a bad one.

    One loop with the checks inline: it runs 100,000 times within a request's time.
    """
    seen: set[str] = set()
    recipients: list[Recipient] = []
    duplicates = 0
    for at, to, parameters in rows:
        if not (
            type(to) is str
            and 0 < len(to) <= RECIPIENT_MAX
            and to.isprintable()
            and to[0] != " "
            and to[-1] != " "
        ):
            problems.append(
                (f"{where.format(at)}.to", f"must be 1 to {RECIPIENT_MAX} printable characters")
            )
            continue
        params = _parameters(parameters)
        if params is None:
            problems.append(
                (
                    f"{where.format(at)}.parameters",
                    f"at most {PARAMETERS_MAX} strings of 1 to {PARAMETER_MAX} characters",
                )
            )
            continue
        if to in seen:
            duplicates += 1
            continue
        seen.add(to)
        recipients.append(Recipient(to, params))
    return _Recipients(recipients, duplicates)


def _parameters(value: object) -> tuple[str, ...] | None:
    if value is None or value == ():
        return ()
    if type(value) not in (list, tuple) or len(value) > PARAMETERS_MAX:  # type: ignore[arg-type]
        return None
    assert isinstance(value, list | tuple)
    for parameter in value:
        if not _good_parameter(parameter):
            return None
    return tuple(value)


def _good_parameter(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= PARAMETER_MAX and "\x00" not in value


def _good_identifier(value: object, longest: int) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= longest
        and value.isprintable()
        and value == value.strip()
    )


def _request(
    data: dict[str, Any], recipients: _Recipients, problems: list[tuple[str, str]]
) -> BroadcastRequest:
    number = data.get("phone_number_id")
    if not (
        isinstance(number, str)
        and number.isascii()
        and number.isdigit()
        and len(number) <= PHONE_NUMBER_ID_MAX
    ):
        problems.append(("phone_number_id", "must be the digits of a phone number id"))
    name = data.get("name")
    if not _good_identifier(name, NAME_MAX):
        problems.append(("name", f"must be 1 to {NAME_MAX} printable characters"))
    template = _template(data.get("template"), problems)
    start_at = _start_at(data.get("start_at"), problems)
    marketing = data.get("marketing", False)
    if not isinstance(marketing, bool):
        problems.append(("marketing", "must be true or false"))
    if problems or template is None:
        raise InvalidBroadcast(problems[:PROBLEMS_SHOWN])
    assert isinstance(number, str)
    assert isinstance(name, str)
    return BroadcastRequest(
        phone_number_id=number,
        name=name,
        template=template,
        recipients=tuple(recipients.users),
        start_at=start_at,
        marketing=bool(marketing),
        duplicates=recipients.duplicates,
    )


def _template(value: object, problems: list[tuple[str, str]]) -> Template | None:
    try:
        action = parse_action("template", value)
    except InvalidAction as exc:
        for where, message in exc.problems:
            problems.append((".".join(str(p) for p in (where or ("template",))), message))
        return None
    assert isinstance(action, Template)
    return action


def _start_at(value: object, problems: list[tuple[str, str]]) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.timestamp()
    problems.append(("start_at", "must be an ISO 8601 time with its offset (2026-12-24T09:00Z)"))
    return None
