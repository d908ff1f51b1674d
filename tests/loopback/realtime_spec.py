"""The Realtime API's event types, from the official ``openai`` SDK, as a validator at least as strict as the
real server.

The SDK's pydantic models accept unknown fields (``extra="allow"``) and coerce loosely; the real server refuses
unknown parameters (a beta-era ``session.voice``, ``modalities`` or ``input_audio_format`` is an
``unknown_parameter`` error) and wrong types. So a client event is validated against the model its ``type``
names, in pydantic's strict mode (no string for a number), and then every model in the result is walked for
fields the type does not declare. Each problem comes back with the ``code``, ``message`` and ``param`` the real
server would put in its ``error`` event.

Server events (the double's own) are validated strictly too, but may carry fields the SDK does not model (the
real server sends ``session.id``, ``session.object``, ``session.expires_at``), as the bot must tolerate.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError


@dataclass(frozen=True)
class Problem:
    """One reason to refuse an event, shaped like the real server's ``error`` object."""

    code: str
    message: str
    param: str | None = None
    #: A refusal the tests provoke on purpose (a voice this service does not offer): not the bot's fault.
    expected: bool = False

    def __str__(self) -> str:
        return f"{self.code} ({self.param}): {self.message}" if self.param else f"{self.code}: {self.message}"


def _by_type(union: Any) -> dict[str, type[BaseModel]]:
    """``{"session.update": SessionUpdateEvent, ...}`` from the SDK's annotated union."""
    members = get_args(get_args(union)[0])
    return {get_args(model.model_fields["type"].annotation)[0]: model for model in members}


@cache
def client_event_types() -> dict[str, type[BaseModel]]:
    from openai.types.realtime import RealtimeClientEvent  # imported here: the SDK costs ~1 s of CPU to import

    return _by_type(RealtimeClientEvent)


@cache
def _server_adapter() -> TypeAdapter[Any]:
    from openai.types.realtime import RealtimeServerEvent

    return TypeAdapter(RealtimeServerEvent)


def warm_up_validation() -> None:
    """Import the SDK and build its validators now, before a client connects: the first event would otherwise
    wait for them (over a second on a busy machine, longer than a client's set-up timeout)."""
    client_event_types()
    _server_adapter()


def client_event_problems(event: Any) -> list[Problem]:
    """Why the real server would refuse ``event`` (a decoded JSON value); empty when it would not."""
    if not isinstance(event, dict):
        return [Problem("invalid_json", "The event is not a JSON object.")]
    kind = event.get("type")
    model = client_event_types().get(kind) if isinstance(kind, str) else None
    if model is None:
        return [Problem("invalid_value", f"Invalid value: {str(kind)[:60]!r}. Unknown event type.", "type")]
    try:
        parsed = model.model_validate(event, strict=True)
    except ValidationError as exc:
        return list(dict.fromkeys(_problem(error) for error in exc.errors()))[:3]
    return [Problem("unknown_parameter", f"Unknown parameter: '{path}'.", path) for path in unknown_fields(parsed)]


def server_event_problems(event: Any) -> list[str]:
    """Why ``event`` is not a server event of the SDK's union (the double checks its own output)."""
    try:
        _server_adapter().validate_python(event, strict=True)
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]]
    return []


def unknown_fields(value: Any, path: str = "") -> list[str]:
    """Dotted paths (``session.voice``, ``response.input[0].foo``) of every field no model declares."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{name}" if path else name for name in (value.__pydantic_extra__ or {})]
        for name in type(value).model_fields:
            found += unknown_fields(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found += unknown_fields(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += unknown_fields(item, f"{path}.{key}")
    return found


def _problem(error: Any) -> Problem:
    """A pydantic error as OpenAI words it. Union members show up in ``loc`` by class name; they are dropped
    from the parameter path (``session.RealtimeSessionCreateRequest.audio`` -> ``session.audio``)."""
    param = ".".join(
        f"[{part}]" if isinstance(part, int) else str(part)
        for part in error["loc"]
        if not (isinstance(part, str) and (part[:1].isupper() or part.startswith(("literal[", "str", "function"))))
    ).replace(".[", "[")
    kind = error["type"]
    if kind == "missing":
        return Problem("missing_required_parameter", f"Missing required parameter: '{param}'.", param)
    if kind.endswith("_type") or kind in ("model_attributes_type", "dict_type", "list_type"):
        return Problem("invalid_type", f"Invalid type for '{param}': {error['msg']}.", param)
    return Problem("invalid_value", f"Invalid value for '{param}': {error['msg']}.", param)
