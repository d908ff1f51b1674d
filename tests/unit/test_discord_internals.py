"""Every discord.py internal the bot relies on (``bot.discord_internals.SEAMS``) is still there, with the same
parameters: an upgrade of the pinned discord.py that moves one fails here, naming it."""

from __future__ import annotations

import inspect

import discord
import pytest

from bot.discord_internals import SEAMS, Seam


def present(seam: Seam) -> bool:
    """A class attribute, or one the class's ``__init__`` sets (instance attributes are not on the class)."""
    if hasattr(seam.owner, seam.name) or seam.name in getattr(seam.owner, "__slots__", ()):
        return True
    for klass in seam.owner.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None and f"self.{seam.name}" in inspect.getsource(init):
            return True
    return False


@pytest.mark.parametrize("seam", SEAMS, ids=[f"{s.owner.__name__}.{s.name}" for s in SEAMS])
def test_the_internal_exists(seam: Seam) -> None:
    assert present(seam), f"discord.py {discord.__version__}: {seam.owner.__name__}.{seam.name} is gone ({seam.why})"


@pytest.mark.parametrize("seam", [s for s in SEAMS if s.parameters is not None],
                         ids=[f"{s.owner.__name__}.{s.name}" for s in SEAMS if s.parameters is not None])
def test_the_method_keeps_its_parameters(seam: Seam) -> None:
    parameters = tuple(inspect.signature(getattr(seam.owner, seam.name)).parameters)
    assert parameters == seam.parameters, (
        f"discord.py {discord.__version__}: {seam.owner.__name__}.{seam.name}{parameters} changed ({seam.why})")


def test_the_pin_is_the_version_the_seams_were_checked_against() -> None:
    assert discord.__version__ == "2.7.1"
