"""What a span's attributes mean: the OpenTelemetry GenAI and OpenInference conventions.

GenAI (gen_ai.*): the current form puts messages in `gen_ai.input.messages` /
`gen_ai.output.messages` (JSON text) and the provider in `gen_ai.provider.name`; older
instrumentations send `gen_ai.system`, `gen_ai.usage.prompt_tokens`, span events
(`gen_ai.user.message`, `gen_ai.choice`, ...) or flattened `gen_ai.prompt.N.*`
attributes. OpenInference (Arize Phoenix): `openinference.span.kind`, `input.value` /
`output.value`, `llm.*`. Each fact is read from the first key that is present, in the
order listed here, newest convention first.

Attributes read into a step's input or output are taken out of its metadata (they would
be stored twice); every other attribute stays there, as sent.
"""

from __future__ import annotations

import re
from typing import Any

from chad_memory.errors import InvalidInputError
from chad_memory.validation import json_from_text, quoted

OPERATION = ("gen_ai.operation.name", "openinference.span.kind")
# Operations whose span is one model call (GenAI operation names; OpenInference's kind).
LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "LLM"})
PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
# The model asked for and the one that answered (chad_memory.schemas.usage_model picks
# the name usage counts a call under). OpenInference's llm.model_name is the response's
# (absent when the call failed); the model it asked for is in llm.invocation_parameters.
REQUEST_MODEL = ("gen_ai.request.model",)
RESPONSE_MODEL = ("gen_ai.response.model", "llm.model_name")
INVOCATION_PARAMETERS = "llm.invocation_parameters"
INVOCATION_MODEL_KEYS = ("model", "model_name")
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
TOTAL_TOKENS = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total")
# Parts of the counts above (OpenTelemetry GenAI: input tokens include cache reads and
# writes, output tokens include reasoning), into llm_calls' cached_tokens,
# cache_write_tokens and reasoning_tokens: the current GenAI names, OpenLLMetry's, then
# OpenInference's. A span whose parts exceed its totals is refused (see LLMCallFields).
CACHE_READ_TOKENS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
CACHE_WRITE_TOKENS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
REASONING_TOKENS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
)
# A cost the span reports is kept as sent (cost_source 'client'); without one the call is
# priced like any other (chad_memory.prices).
COST = ("llm.cost.total", "gen_ai.usage.cost")
CONVERSATION = ("gen_ai.conversation.id", "session.id")
USER = ("user.id", "enduser.id")

INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
# GenAI events before gen_ai.input/output.messages: one event per message.
INPUT_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
OUTPUT_EVENTS = frozenset({"gen_ai.choice"})
# Earlier still: the whole prompt / completion in one event attribute.
CONTENT_EVENTS = {
    "gen_ai.content.prompt": "gen_ai.prompt",
    "gen_ai.content.completion": "gen_ai.completion",
}

_FLAT_MESSAGE = re.compile(
    r"^(gen_ai\.prompt|gen_ai\.completion|llm\.input_messages|llm\.output_messages)\.([0-9]+)\.(.+)$",
    re.ASCII,
)
# A flattened message index past this many digits names no real message.
_MAX_INDEX_DIGITS = 9
_INPUT_PREFIXES = ("gen_ai.prompt", "llm.input_messages")
_FLAT_PREFIXES = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
)


def first_key(attributes: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first of `keys` whose attribute is present and not empty."""
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return key
    return None


def first(attributes: dict[str, Any], keys: tuple[str, ...]) -> Any:
    key = first_key(attributes, keys)
    return None if key is None else attributes[key]


def request_model(attributes: dict[str, Any]) -> Any:
    """The model asked for: `gen_ai.request.model`, else OpenInference's invocation
    parameters (JSON text) `model` / `model_name`."""
    found = first(attributes, REQUEST_MODEL)
    if found is not None:
        return found
    parameters = parsed(attributes.get(INVOCATION_PARAMETERS))
    if isinstance(parameters, dict):
        for key in INVOCATION_MODEL_KEYS:
            if isinstance(parameters.get(key), str) and parameters[key]:
                return parameters[key]
    return None


def parsed(value: Any, where: str = "an attribute") -> Any:
    """JSON text as the value it encodes; anything else (or text that is not JSON) as is.
    JSON nested past the parser's reach is refused (InvalidInputError), not kept as text."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json_from_text(value, where)
        except InvalidInputError:
            raise
        except ValueError:
            return value
    return value


def _mime_value(attributes: dict[str, Any], prefix: str) -> Any:
    value = attributes.pop(f"{prefix}.value")
    if str(attributes.get(f"{prefix}.mime_type", "")).startswith("application/json"):
        return parsed(value, f"attribute {prefix}.value")
    return value


def _flat_messages(attributes: dict[str, Any], inputs: bool) -> tuple[list[Any], list[str]]:
    """OpenLLMetry's `gen_ai.prompt.0.role` and OpenInference's
    `llm.input_messages.0.message.content` as a message list, with the keys it came from."""
    found: dict[int, dict[str, Any]] = {}
    keys = []
    for key, value in attributes.items():
        if not key.startswith(_FLAT_PREFIXES):  # cheap test first: most keys are not
            continue
        match = _FLAT_MESSAGE.match(key)
        if match is None or (match.group(1) in _INPUT_PREFIXES) != inputs:
            continue
        _, index, field = match.groups()
        if len(index) > _MAX_INDEX_DIGITS:
            raise InvalidInputError(
                f"attribute {quoted(key)!r}: a message index has at most {_MAX_INDEX_DIGITS} digits"
            )
        found.setdefault(int(index), {})[field.removeprefix("message.")] = value
        keys.append(key)
    return [nested(message) for _, message in sorted(found.items())], keys


# OpenInference wraps each item of a message's lists in one more object
# (`tool_calls.0.tool_call.function.name`, `contents.0.message_content.text`); the
# rebuilt lists hold the items themselves, as OpenAI's messages do.
_ITEM_WRAPPERS = {"tool_calls": "tool_call", "contents": "message_content"}


class _Leaf:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _path(field: str) -> list[str | int]:
    parts = field.split(".")
    path: list[str | int] = []
    for i, part in enumerate(parts):
        wrapper = _ITEM_WRAPPERS.get(parts[i - 2]) if i >= 2 and parts[i - 1].isdigit() else None
        if part == wrapper:
            continue
        path.append(int(part) if part.isdigit() else part)
    return path


def _place(tree: dict[Any, Any], path: list[str | int], value: Any) -> bool:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return False
        node = child
    if path[-1] in node:
        return False
    node[path[-1]] = _Leaf(value)
    return True


def _built(node: Any) -> Any:
    if isinstance(node, _Leaf):
        return node.value
    if node and all(isinstance(key, int) for key in node):
        return [_built(node[key]) for key in sorted(node)]
    return {str(key): _built(child) for key, child in node.items()}


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """A message's flattened fields (`tool_calls.0.function.name`) as nested objects and
    lists (`{"tool_calls": [{"function": {"name": ...}}]}`); numeric parts are list
    positions, in order. A field that cannot be placed (its path runs through a value
    already placed) stays under its flat key, as sent."""
    tree: dict[Any, Any] = {}
    # Shorter paths first, so a field left flat (it has a dot) never displaces one placed.
    for field, value in sorted(flat.items(), key=lambda item: item[0].count(".")):
        if not _place(tree, _path(field), value):
            tree[field] = _Leaf(value)
    return {str(key): _built(child) for key, child in tree.items()}


def _side(
    attributes: dict[str, Any],
    events: list[tuple[str, dict[str, Any]]],
    used_events: set[int],
    inputs: bool,
) -> Any:
    """One side (input or output) from the first form present; what is read is consumed."""
    key = INPUT_MESSAGES if inputs else OUTPUT_MESSAGES
    if key in attributes:
        return parsed(attributes.pop(key), f"attribute {key}")
    from_events = []
    for position, (name, event_attributes) in enumerate(events):
        if inputs and name in INPUT_EVENTS:
            from_events.append({"role": INPUT_EVENTS[name], **_event_body(event_attributes)})
        elif not inputs and name in OUTPUT_EVENTS:
            from_events.append(_event_body(event_attributes))
        elif (name == "gen_ai.content.prompt") == inputs and name in CONTENT_EVENTS:
            if CONTENT_EVENTS[name] not in event_attributes:
                continue
            content = CONTENT_EVENTS[name]
            from_events.append(parsed(event_attributes[content], f"event {name} {content}"))
        else:
            continue
        used_events.add(position)
    if from_events:
        return from_events
    flat, flat_keys = _flat_messages(attributes, inputs)
    if flat:
        for flat_key in flat_keys:
            del attributes[flat_key]
        return flat
    prefix = "input" if inputs else "output"
    if f"{prefix}.value" in attributes:
        return _mime_value(attributes, prefix)
    return None


def input_output(
    attributes: dict[str, Any], events: list[tuple[str, dict[str, Any]]]
) -> tuple[Any, Any, list[int]]:
    """(input, output, positions of the events read into neither); read attributes are
    removed from `attributes`."""
    used: set[int] = set()
    inputs = _side(attributes, events, used, inputs=True)
    outputs = _side(attributes, events, used, inputs=False)
    return inputs, outputs, [i for i in range(len(events)) if i not in used]


def _event_body(attributes: dict[str, Any]) -> dict[str, Any]:
    """An event's attributes, with JSON text (e.g. `message`, `tool_calls`) decoded."""
    return {
        key: parsed(value, f"event attribute {quoted(key)}") for key, value in attributes.items()
    }
