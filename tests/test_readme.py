"""The README's commands are the ones CI and the presets really use."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    (command,) = [
        b.strip() for b in bash_blocks() if b.startswith("python3 -m venv") and "pytest" in b
    ]
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_main_command_uses_the_tutorial_preset():
    setup = [b.strip() for b in bash_blocks() if b.startswith("python3 -m venv")]
    (command,) = [b for b in setup if "actbench run" in b]
    assert "configs/tutorial.toml" in command
    assert (ROOT / "configs" / "tutorial.toml").is_file()
