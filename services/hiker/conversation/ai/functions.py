"""A bot author's function as a tool the model may call (``@bot.tool``): its JSON schema from
its type hints (pydantic), the model's arguments validated before the call, its return value
as the ``tool`` message."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic_core import to_jsonable_python

from hiker.conversation.ai.tools import Effects, ToolContext, ToolError, function_spec
from hiker.core.ai_model import ToolSpec

# OpenAI's rule for a function's name.
_NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class FunctionTool:
    """A bot author's function as a tool: its name, its docstring as the description, and
    the JSON schema of its parameters from their type hints (pydantic). The model's arguments
    are validated before the call; the return value (JSON-able) is what the model reads.

    A sync function runs in a thread, so a blocking lookup does not stall other turns.
    """

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> None:
        self.function = function
        self._name: str = name or str(getattr(function, "__name__", ""))
        if not _NAME.match(self._name):
            raise TypeError(f"a tool's name is 1-64 letters, digits, _ or -: {self._name!r}")
        self.description = description or inspect.getdoc(function) or ""
        self._context_parameter: str | None = None
        self._model = self._arguments_model(function)

    @property
    def name(self) -> str:
        return self._name

    def _arguments_model(self, function: Callable[..., Any]) -> type[BaseModel]:
        try:
            hints = get_type_hints(function, include_extras=True)
        except Exception as exc:  # a hint naming what the module does not define
            raise TypeError(f"tool {self._name}: cannot read its type hints ({exc})") from None
        fields: dict[str, Any] = {}
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                raise TypeError(
                    f"tool {self._name}: parameter {parameter.name} must be passable by name"
                )
            if parameter.name.startswith("_"):
                raise TypeError(f"tool {self._name}: parameter {parameter.name} starts with _")
            hint = hints.get(parameter.name, Any)
            if hint is ToolContext:
                self._context_parameter = parameter.name
                continue
            default = ... if parameter.default is parameter.empty else parameter.default
            fields[parameter.name] = (hint, default)
        try:
            return create_model(
                f"{self._name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
            )
        except Exception as exc:  # pydantic's own errors: a field name it will not take...
            raise TypeError(f"tool {self._name}: its parameters make no schema ({exc})") from None

    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as the model is told it."""
        schema = self._model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        schema.setdefault("properties", {})
        return schema

    def spec(self) -> ToolSpec:
        return function_spec(self._name, self.description, self.parameters())

    async def call(
        self, arguments: Mapping[str, Any], context: ToolContext, effects: Effects
    ) -> str:
        try:
            validated = self._model.model_validate(dict(arguments))
        except ValidationError as exc:
            raise ToolError(validation_problems(exc)) from None
        kwargs = {name: getattr(validated, name) for name in type(validated).model_fields}
        if self._context_parameter is not None:
            kwargs[self._context_parameter] = context
        if inspect.iscoroutinefunction(self.function):
            value = await self.function(**kwargs)
        else:
            value = await asyncio.to_thread(self.function, **kwargs)
            if inspect.isawaitable(value):
                value = await value
        return as_tool_content(value)


def as_tool_content(value: Any) -> str:
    """A tool's return value as the ``tool`` message's text: a string as it is, anything
    else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(to_jsonable_python(value), ensure_ascii=False)
    except Exception as exc:  # pydantic's serialization error for what JSON cannot hold
        raise ToolError(f"the tool returned what JSON cannot hold ({type(value).__name__})") from (
            exc
        )


def validation_problems(exc: ValidationError) -> str:
    """Pydantic's errors as one line a model can act on: where, and what is wrong."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'arguments'}: {error['msg']}"
        for error in exc.errors()
    )
