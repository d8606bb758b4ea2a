"""The README's promises that a test can hold it to."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    block = re.search(r"```\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None
    return block.group(1).splitlines()


def test_exactly_two_setup_commands_with_the_cpu_torch_first():
    install, tests = _setup_commands()
    assert install.startswith("pip install torch==2.13.0 && ") and install.endswith(
        "ganforge train"
    )
    assert tests.startswith("pip install torch==2.13.0 && ") and '".[dev]"' in tests
    assert tests.endswith("pytest")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "block.splitlines()[1]" in ci and "README.md" in ci
    assert "ruff check" in ci and "mypy" in ci


def test_every_preset_and_command_is_documented():
    from ganforge.cli import COMMANDS
    from ganforge.config import PRESETS

    text = (ROOT / "README.md").read_text()
    assert all(f"`{name}`" in text for name in PRESETS)
    assert all(f"ganforge {cmd}" in text for cmd in COMMANDS)
