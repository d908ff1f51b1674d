"""``ast.parse`` for the tests that read the project's own source (layout, architecture, translations)."""

from __future__ import annotations

import ast


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse``, tried again when CPython 3.11 reports a spurious "AST constructor recursion depth mismatch":
    before 3.11.9 (gh-106905) that depth is one counter for the whole process, so another thread of the test
    worker building an AST at the same moment breaks it. The source is the same; the second try parses it."""
    try:
        return ast.parse(source, filename)
    except SystemError as error:
        if "recursion depth mismatch" not in str(error):
            raise
        return ast.parse(source, filename)
