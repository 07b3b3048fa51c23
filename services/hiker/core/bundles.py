"""The wire format of a message body: one contract, or a bundle of contracts of one type.

Most of what a message costs, in the broker and in the client, is per AMQP message, not per
byte: contracts going to the same place at the same moment therefore travel together, as one
message whose body is a JSON array of what each would have been alone. The AMQP ``type`` names
the contract of every element; ``x-hiker-bundle`` carries the count (for people looking at a
queue). A bundle of one is sent as the plain object, so a single contract is always valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Final, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json, to_json

from hiker.core.contracts import Contract

BUNDLE_HEADER: Final = "x-hiker-bundle"

C = TypeVar("C", bound=Contract)


def encode(items: Sequence[bytes]) -> bytes:
    """The body carrying ``items`` (each a contract's JSON): the item itself when alone."""
    if len(items) == 1:
        return items[0]
    return b"[" + b",".join(items) + b"]"


def is_bundle(body: bytes) -> bool:
    return body.lstrip()[:1] == b"["


@dataclass
class Decoded(Generic[C]):
    """A body's contracts, and the JSON of the elements that are not valid ``C``."""

    items: list[C] = field(default_factory=list)
    invalid: list[bytes] = field(default_factory=list)


class NotAContract(ValueError):
    """The body is neither a ``C`` nor a JSON array (the whole message is unreadable)."""


def decode(body: bytes, contract: type[C]) -> Decoded[C]:
    """The contracts in ``body``; NotAContract when it is not one nor a bundle of them."""
    if not is_bundle(body):
        try:
            return Decoded([contract.model_validate_json(body)])
        except ValidationError as exc:
            raise NotAContract(
                f"not a valid {contract.type_name()}: {exc.error_count()} errors"
            ) from None
    try:
        return Decoded(_bundle_adapter(contract).validate_json(body))
    except ValidationError:
        pass
    # Some element is wrong: keep the good ones, set the others apart one by one.
    try:
        elements = from_json(body)
    except ValueError:
        raise NotAContract("a bundle that is not valid JSON") from None
    if not isinstance(elements, list):
        raise NotAContract("a bundle that is not a JSON array")
    decoded: Decoded[C] = Decoded()
    for element in elements:
        try:
            decoded.items.append(contract.model_validate(element))
        except ValidationError:
            decoded.invalid.append(to_json(element))
    return decoded


@cache
def _bundle_adapter(contract: type[C]) -> TypeAdapter[list[C]]:
    return TypeAdapter(list[contract])  # type: ignore[valid-type]
