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


DOCS = ROOT / "docs"
README_LIMIT = 200  # lines: the README is the front door, docs/ holds the reference


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def _linked_pages(text: str) -> set[str]:
    """The docs pages a markdown text links to, as file names (``training.md``)."""
    return set(re.findall(r"\]\(docs/([\w-]+\.md)(?:#[\w-]*)?\)", text))


def _lines_naming(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if f"`{name}`" in line]


def _list_lines_for(text: str, name: str) -> list[str]:
    """The README's one-line entries for a name: list items that open with it in backticks."""
    return [line for line in text.splitlines() if line.startswith((f"- `{name}`:", f"- `{name}` "))]


def _anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings (fenced code skipped)."""
    out, fenced = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_the_readme_is_a_front_door_under_200_lines():
    assert len(_readme().splitlines()) < README_LIMIT


def test_every_preset_has_a_line_in_the_readme_and_a_row_in_the_docs():
    from ganforge.config import PRESETS

    readme, reference = _readme(), (DOCS / "configuration.md").read_text()
    assert PRESETS
    for name in PRESETS:
        assert len(_list_lines_for(readme, name)) == 1, f"README: not one line for `{name}`"
        assert _lines_naming(reference, name), f"docs/configuration.md names no `{name}`"


def test_every_command_has_a_line_in_the_readme_and_a_section_in_the_docs():
    from ganforge.cli import COMMANDS

    readme, reference = _readme(), (DOCS / "commands.md").read_text()
    assert COMMANDS
    for name in COMMANDS:
        entries = _list_lines_for(readme, f"ganforge {name}")
        assert len(entries) == 1, f"README: not one line for `ganforge {name}`"
        assert f"## `ganforge {name}`" in reference, f"docs/commands.md: no `ganforge {name}`"


def test_every_config_key_is_in_the_configuration_page():
    from ganforge.config import Config, fields_of

    reference = (DOCS / "configuration.md").read_text()
    keys = fields_of(Config())
    assert "train.steps" in keys
    missing = [key for key in keys if f"`{key}`" not in reference]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_the_readme_index_and_the_docs_folder_agree():
    linked = _linked_pages(_readme())
    pages = {page.name for page in DOCS.glob("*.md")}
    assert linked, "the README links no docs page"
    assert not linked - pages, f"the README links missing pages {sorted(linked - pages)}"
    assert not pages - linked, f"the README's index lacks {sorted(pages - linked)}"


def test_links_to_docs_pages_lead_to_pages_and_headings_that_exist():
    sources = [(ROOT / "README.md", "docs/"), *((page, "") for page in DOCS.glob("*.md"))]
    for source, prefix in sources:
        link = re.escape(prefix) + r"([\w-]+\.md)(?:#([^)\s]*))?"
        for target, anchor in re.findall(r"\]\(" + link + r"\)", source.read_text()):
            page = DOCS / target
            assert page.is_file(), f"{source.name} links to missing {target}"
            if anchor:
                assert anchor in _anchors(page.read_text()), f"{source.name}: {target}#{anchor}"
