"""Validate request bodies against Discord's published OpenAPI document.

The loopback Discord checks every body the bot sends against the operation the real API declares, so a
payload Discord would reject with 50035 fails the test here too. ``$ref`` pointers resolve inside the whole
document (``referencing`` registry), and each operation's validator is compiled once and cached.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "discord-openapi.json"
_DOC_URI = "urn:discord-openapi"
_MAX_VERDICTS = 20_000  # a worker's memory stays bounded however many distinct bodies its tests send
_METHODS = ("get", "put", "post", "patch", "delete")


def _relax(doc: dict[str, Any]) -> dict[str, Any]:
    """Loosen the few places where the spec is stricter than the live API (and than discord.py).

    Discord parses snowflakes from integers as well as strings, and discord.py numbers new attachments with
    integers (``{"id": 0, "filename": ...}``); the spec's ``SnowflakeType`` only admits strings.
    """
    doc = copy.deepcopy(doc)
    snowflake = doc["components"]["schemas"]["SnowflakeType"]
    doc["components"]["schemas"]["SnowflakeType"] = {
        "anyOf": [snowflake, {"type": "integer", "minimum": 0}],
    }
    return doc


@dataclass(frozen=True)
class Operation:
    """One OpenAPI operation: its path template and the body schemas it declares by media type."""

    method: str
    template: str
    operation_id: str
    pointer: str  # JSON pointer of the operation object inside the document
    media_types: tuple[str, ...] = field(default=())
    query: tuple[str, ...] = field(default=())  # names of the declared query parameters
    body_required: bool = False


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


class OpenAPISpec:
    """The Discord document, indexed by method and path template."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = _relax(doc)
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self._registry = Registry().with_resource(_DOC_URI, resource)
        self._operations: list[tuple[re.Pattern[str], Operation]] = []
        for template, item in self.doc["paths"].items():
            for method in _METHODS:
                if (op := item.get(method)) is None:
                    continue
                pointer = f"/paths/{_escape(template)}/{method}"
                request_body = op.get("requestBody", {})
                query = tuple(p["name"] for p in op.get("parameters", []) if p.get("in") == "query")
                operation = Operation(method.upper(), template, op.get("operationId", ""), pointer,
                                      tuple(request_body.get("content", {})), query,
                                      bool(request_body.get("required")))
                self._operations.append((_template_regex(template), operation))
        # Literal segments must win over parameters (``/messages/@original`` before ``/messages/{id}``).
        self._operations.sort(key=lambda entry: entry[1].template.count("{"))
        self._validators: dict[str, Draft202012Validator] = {}  # by JSON pointer of the schema
        # Verdicts by (operation, schema pointer, the instance as canonical JSON). Validating against this spec's
        # unions is slow (a command sync body takes about 0.3 s) and every test sends the same few bodies, so each
        # distinct body is validated once per process; validation is a pure function of these, so nothing is lost.
        self._verdicts: dict[tuple[str, str, str], list[str]] = {}

    def find(self, method: str, path: str) -> Operation | None:
        """The operation for ``path`` (without the ``/api/v10`` prefix or query string), or None."""
        for regex, operation in self._operations:
            if operation.method == method.upper() and regex.match(path):
                return operation
        return None

    def validate_body(self, operation: Operation, media_type: str, body: Any) -> list[str]:
        """Schema errors for ``body`` sent as ``media_type`` (for multipart: the decoded ``payload_json``)."""
        if not operation.media_types:
            return [f"{operation.operation_id} takes no request body"]
        if media_type not in operation.media_types:
            return [f"{operation.operation_id} does not accept {media_type} (only {list(operation.media_types)})"]
        return self._errors(operation, f"{operation.pointer}/requestBody/content/{_escape(media_type)}/schema", body)

    def validate_response(self, operation: Operation, status: int, body: Any) -> list[str]:
        """Schema errors for a JSON response the emulator is about to send (its own realism check)."""
        responses = self._lookup(f"{operation.pointer}/responses")
        key = next((k for k in (str(status), f"{str(status)[0]}XX", "default") if k in responses), None)
        if key is None:
            return [f"{operation.operation_id}: the spec declares no {status} response"]
        pointer = f"{operation.pointer}/responses/{key}"
        if "$ref" in responses[key]:
            pointer = responses[key]["$ref"].removeprefix("#")
        if "application/json" not in self._lookup(pointer).get("content", {}):
            return [] if body is None else [f"{operation.operation_id}: {status} has no JSON body in the spec"]
        # The emulator's responses differ from test to test only in their ids and times: validated with those
        # replaced by one fixed valid value, each response shape is validated once per process.
        return self._errors(operation, f"{pointer}/content/application~1json/schema", _with_fixed_ids(body))

    def _lookup(self, pointer: str) -> Any:
        return self._registry.resolver().lookup(f"{_DOC_URI}#{pointer}").contents

    def _validator(self, pointer: str) -> Draft202012Validator:
        if (validator := self._validators.get(pointer)) is None:
            validator = Draft202012Validator({"$ref": f"{_DOC_URI}#{pointer}"}, registry=self._registry)
            self._validators[pointer] = validator
        return validator

    def _errors(self, operation: Operation, pointer: str, instance: Any) -> list[str]:
        key = (operation.operation_id, pointer, json.dumps(instance, sort_keys=True, separators=(",", ":")))
        if (verdict := self._verdicts.get(key)) is None:
            if len(self._verdicts) >= _MAX_VERDICTS:
                self._verdicts.clear()
            errors = sorted(self._validator(pointer).iter_errors(instance), key=lambda e: list(e.absolute_path))
            verdict = self._verdicts[key] = [_describe(operation, error) for error in errors]
        return list(verdict)


_SNOWFLAKE = re.compile(r"[1-9][0-9]{15,19}")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)")


def _with_fixed_ids(value: Any) -> Any:
    """``value`` with every snowflake id and ISO 8601 time replaced by one fixed valid one (others untouched)."""
    if isinstance(value, dict):
        return {key: _with_fixed_ids(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_fixed_ids(item) for item in value]
    if isinstance(value, str):
        if _SNOWFLAKE.fullmatch(value):
            return "1000000000000000000"
        if _TIMESTAMP.fullmatch(value):
            return "2026-01-01T00:00:00+00:00"
    return value


def _describe(operation: Operation, error: ValidationError) -> str:
    """One line naming the failure that matters inside anyOf/oneOf unions.

    Union branches are told apart by an ``enum``/``const`` discriminator (``type``), so a branch that fails
    only there is the wrong branch; among the rest the deepest location is the most specific.
    """
    best = error
    while best.context:
        best = min(best.context, key=lambda e: (e.validator in ("enum", "const"), -len(e.absolute_path)))
    where = "/".join(str(p) for p in best.absolute_path) or "<body>"
    return f"{operation.operation_id}: {where}: {best.message}"


@cache
def load_spec(path: Path = SPEC_PATH) -> OpenAPISpec:
    """The parsed document, shared by every emulator in the process (parsing 1 MB once is enough)."""
    return OpenAPISpec(json.loads(path.read_text()))
