"""Validate speech request and error bodies against the published OpenAI spec (``openai-speech.json``).

The loopback speech endpoint checks every request the bot sends against ``CreateSpeechRequest`` and every
error body it answers with against ``ErrorResponse``, so a body the real API would reject fails the test.
``$ref`` pointers resolve inside the whole document through a ``referencing`` registry.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "openai-speech.json"
_DOC_URI = "urn:openai-speech"


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    doc = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    registry = Registry().with_resource(_DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"{_DOC_URI}#/components/schemas/{schema_name}"}, registry=registry)


def _problems(schema_name: str, instance: Any) -> list[str]:
    # Messages quote the offending value, which may be a whole 5000-character input: keep them readable.
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<body>'}: {error.message[:200]}"
        for error in _validator(schema_name).iter_errors(instance)
    ]


def speech_request_problems(body: Any) -> list[str]:
    """Why ``body`` is not a valid ``CreateSpeechRequest`` (empty when it is)."""
    return _problems("CreateSpeechRequest", body)


def error_response_problems(body: Any) -> list[str]:
    """Why ``body`` is not a valid ``ErrorResponse`` (empty when it is)."""
    return _problems("ErrorResponse", body)
