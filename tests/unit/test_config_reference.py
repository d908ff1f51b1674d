"""docs/configuration.md is generated from the loader's declarations: it is current, it names every variable the
loader reads, and what it says about defaults and ranges is what the loader does."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DECLARATIONS, ConfigError, Variable, load_settings
from bot.config_reference import COMMAND, render
from tests.unit.test_config import variables_the_loader_reads

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = [v for v in DECLARATIONS if v.low is not None and v.high is not None]
WITH_DEFAULT = [v for v in DECLARATIONS if v.default]


def test_the_committed_reference_is_what_the_generator_makes_now() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render(), f"docs/configuration.md is stale: run `{COMMAND}`"


def test_every_variable_the_loader_reads_is_in_the_reference_once() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    for name in variables_the_loader_reads():
        assert page.count(f"| `{name}` |") == 1, name
    assert {v.name for v in DECLARATIONS} == variables_the_loader_reads()


@pytest.mark.parametrize("variable", WITH_DEFAULT, ids=lambda v: v.name)
def test_the_declared_default_is_what_the_loader_uses_when_unset(variable: Variable) -> None:
    assert load_settings({variable.name: variable.default}) == load_settings({})


@pytest.mark.parametrize("variable", NUMBERS, ids=lambda v: v.name)
def test_a_number_s_declared_range_is_what_the_loader_accepts(variable: Variable) -> None:
    assert variable.low is not None and variable.high is not None
    for inside in (variable.low, variable.high):
        load_settings({variable.name: f"{inside:g}" if inside < 1e6 else str(int(inside))})
    for outside in (variable.low - 1, variable.high + 1):
        with pytest.raises(ConfigError) as refused:
            load_settings({variable.name: str(int(outside))})
        assert refused.value.problems == [
            (f"{variable.name} must be a number between {variable.low:g} and {variable.high:g}, "
            f"not {str(int(outside))!r}.")
        ]


@pytest.mark.parametrize(
    ("name", "value"),
    [("SPEECH_DEFAULT_FORMAT", "flac"), ("SPEECH_BACKEND", "local"), ("LOG_LEVEL", "critical"),
     ("SPEECH_FALLBACK", "none"), ("SHARD_COUNT", "65536")],
)
def test_values_the_reference_lists_as_allowed_are_accepted(name: str, value: str) -> None:
    load_settings({name: value})
    declared = next(v for v in DECLARATIONS if v.name == name)
    assert value.upper() in declared.shown_allowed.upper()


def test_the_reference_runs_as_a_module_and_prints_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.config_reference import main

    assert main() == 0
    assert capsys.readouterr().out == render()
