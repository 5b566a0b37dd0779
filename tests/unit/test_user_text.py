"""Nothing a user reads names an issue of the project's tracker.

A user reads the command's help, ``swarmmesh list``, every experiment's ``--help``, the
docstrings (``help()``, pydoc), the figures' titles and the reports' text (string
literals of the package and the experiments), the Makefile's comments and the pages of
``docs/``.  Upstream references (``moby#1234``, a GitHub address) are fine: they name
someone else's tracker.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
from pathlib import Path

import pytest

from swarmmesh.runs import experiment
from swarmmesh.ui import cli

REPO = Path(__file__).resolve().parents[2]
ISSUE = re.compile(r"\bissues?\s*(?:no\.?\s*)?#?\s*\d+", re.IGNORECASE)


def issue_mentions(text: str) -> list[str]:
    """Every "issue 12" / "Issue #5" / "issues 14" in ``text``."""
    return [m.group(0) for m in ISSUE.finditer(text)]


def test_the_pattern_finds_issue_numbers_and_passes_upstream_references():
    assert issue_mentions("across several servers (issue 15)") == ["issue 15"]
    assert issue_mentions("Issue 12's table; see issue #5") == ["Issue 12", "issue #5"]
    assert issue_mentions("moby#1234, https://github.com/moby/moby/issues/") == []
    assert issue_mentions("a known issue with 2 nodes") == []


def help_texts(ap: argparse.ArgumentParser) -> list[str]:
    """The help of a parser and of every subcommand under it."""
    out = [ap.format_help()]
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            out += [t for sub in action.choices.values() for t in help_texts(sub)]
    return out


def test_the_command_help_names_no_issue():
    found = [m for text in help_texts(cli.parser("swarmmesh")) for m in issue_mentions(text)]
    assert not found, found


def test_swarmmesh_list_names_no_issue():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["list"]) == 0
    assert "routing_mesh" in buf.getvalue()
    assert not issue_mentions(buf.getvalue()), buf.getvalue()


@pytest.mark.parametrize("name", experiment.experiment_names())
def test_every_experiments_help_names_no_issue(name):
    text = experiment.build_parser(experiment.load(name), f"swarmmesh run {name}").format_help()
    assert "--out" in text
    assert not issue_mentions(text), (name, issue_mentions(text))


def string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant in a Python file: docstrings, help, titles,
    report lines (f-strings' literal parts included)."""
    tree = ast.parse(path.read_text())
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def python_files() -> list[Path]:
    return sorted([*(REPO / "swarmmesh").rglob("*.py"), *(REPO / "experiments").glob("*.py"),
                   *(REPO / "topologies").glob("*.py"), *(REPO / "controllers").glob("*.py")])


def test_no_string_in_the_code_names_an_issue():
    found = [f"{p.relative_to(REPO)}:{line}: {m}" for p in python_files()
             for line, text in string_literals(p) for m in issue_mentions(text)]
    assert not found, "\n".join(found)


def test_the_makefiles_comments_and_the_docs_name_no_issue():
    texts = {"Makefile": "\n".join(line for line in (REPO / "Makefile").read_text().splitlines()
                                   if line.lstrip().startswith("#") or "@echo" in line)}
    texts |= {str(p.relative_to(REPO)): p.read_text() for p in sorted(REPO.glob("docs/**/*.md"))}
    found = [f"{name}: {m}" for name, text in texts.items() for m in issue_mentions(text)]
    assert not found, "\n".join(found)
