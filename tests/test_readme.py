"""The README's commands are the ones users type, CI runs and the defaults really do."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from actbench.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    (command,) = [
        b.strip() for b in bash_blocks() if b.startswith("python3 -m venv") and "pytest" in b
    ]
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_users_own_commands_appear_verbatim():
    (setup,) = [b for b in bash_blocks() if b.startswith("python3 -m venv") and "pytest" not in b]
    lines = setup.splitlines()
    assert "actbench run --activations relu,sigmoid,tanh,leaky" in lines
    assert "actbench plot results/" in lines


def test_plain_run_is_the_classic_experiment_of_the_tutorial_preset():
    """The README says `actbench run` alone trains the classic four: the defaults are the preset."""
    preset = tomllib.loads((ROOT / "configs" / "tutorial.toml").read_text(encoding="utf-8"))
    defaults = RunConfig()
    for key, value in preset.items():
        got = getattr(defaults, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    assert "`actbench run` with no options trains the classic four" in README


def test_the_readme_holds_no_placeholder():
    assert "OUTPUT_" not in README
