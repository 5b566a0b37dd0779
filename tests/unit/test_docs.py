"""The README is a front door and docs/ stands behind it: the README stays short, its
Quick start is the two commands, every relative link and anchor in the pages a user reads
resolves, every docs page is linked from the README and says first what it is for, and no
page names one of the project's own issues."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS, REPO / "vm" / "README.md", REPO / "results" / "README.md"]
MAX_README_LINES = 250
QUICK_START = ["sudo make demo", "sudo make test"]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)
# An issue of this project: "issue 12", "issues 12 and 13", "issue-12", "(#13)". Upstream
# citations name their project first ("moby #25526", "swarmkit #1077") and are allowed.
OUR_ISSUE = re.compile(r"\bissues?[ \t-]*#?\d+", re.I)
HASH_NUMBER = re.compile(r"(?<![\w&/])#\d+\b")
UPSTREAM = re.compile(r"(moby|swarmkit|libnetwork|docker/cli|docker|mininet|ovs|openvswitch|"
                      r"os-ken|ryu|faucet|haproxy|kubernetes)[ \t]*$", re.I)


def prose(text: str) -> str:
    """The text with fenced code blocks and code spans blanked (their links are not links)."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return CODE_SPAN.sub(" ", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, lower case, spaces to
    hyphens (letters, digits, '-' and '_' kept)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)        # a link: its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(FENCE.sub("", path.read_text())):
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(prose(path.read_text()))]


def broken_links(path: Path) -> list[str]:
    bad = []
    for target in links(path):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):          # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    return bad


def our_issue_numbers(text: str) -> list[str]:
    found = [m.group(0) for m in OUR_ISSUE.finditer(text)]
    for m in HASH_NUMBER.finditer(text):
        line_start = text.rfind("\n", 0, m.start()) + 1
        if not UPSTREAM.search(text[line_start:m.start()]):
            found.append(text[line_start:m.end()].strip())
    return found


def section(text: str, title: str) -> str:
    parts = re.split(rf"^## {re.escape(title)}[ \t]*$", text, maxsplit=1, flags=re.M)
    assert len(parts) == 2, f"no '## {title}' section"
    return re.split(r"^## ", parts[1], maxsplit=1, flags=re.M)[0]


# -- the rules on made-up pages: each check can fail ----------------------------------------

def test_slug_follows_githubs_rules():
    assert slug("Swarm's own IPVS as a reference path") == "swarms-own-ipvs-as-a-reference-path"
    assert slug("`failover`, `scaling`, `rolling_update`") == "failover-scaling-rolling_update"
    assert slug("Build, teardown and memory against cluster size") == \
        "build-teardown-and-memory-against-cluster-size"
    assert slug("make vm-test: the kernel datapath in a guest") == \
        "make-vm-test-the-kernel-datapath-in-a-guest"


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## A part\n\n## A part\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#a-part) [ok too](other.md#a-part-1) [self](#page)\n"
                    "[gone](missing.md) [no anchor](other.md#nowhere) ![img](fig.png)\n"
                    "`[in code](nowhere.md)`\n```\n[in a block](nowhere.md)\n```\n"
                    "[web](https://example.com/x.md)\n")
    assert broken_links(page) == ["missing.md: no such file",
                                  "other.md#nowhere: no heading with anchor #nowhere in other.md",
                                  "fig.png: no such file"]


def test_our_issue_numbers_are_found_and_upstream_citations_are_not():
    text = ("as in issue 12's table (issue 15), issues 13 and issue-2; see #13.\n"
            "Swarm always SNATs (moby #25526) and has no stickiness (swarmkit #1077).\n"
            "[a link](#contents) and table=13 are fine.\n")
    assert our_issue_numbers(text) == ["issue 12", "issue 15", "issues 13", "issue-2",
                                       "as in issue 12's table (issue 15), issues 13 and "
                                       "issue-2; see #13"]


# -- the real pages ---------------------------------------------------------------------------

def test_the_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, \
        f"README.md has {len(lines)} lines; at most {MAX_README_LINES}: move a subject to docs/"


def test_quick_start_holds_exactly_the_two_commands():
    quick = section(README.read_text(), "Quick start")
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", quick, re.M | re.S)
    commands = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    assert [c for c in commands if c] == QUICK_START
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no {target} target"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", [*PAGES, REPO / "Makefile", REPO / "vm" / "tests.txt"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_no_page_names_an_issue_of_ours(page):
    assert our_issue_numbers(page.read_text()) == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in links(README)}
    assert [p.name for p in DOCS if p.resolve() not in linked] == []


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_a_docs_page_starts_with_its_title_and_what_it_is_for(page):
    lines = [line for line in page.read_text().splitlines() if line.strip()]
    assert lines[0].startswith("# "), "a page starts with its title"
    assert not lines[1].startswith("#"), "then says what its reader comes for, before any section"


def experiment_files() -> set[str]:
    from swarmmesh.runs.experiment import NOT_EXPERIMENTS
    return {p.stem for p in (REPO / "experiments").glob("*.py")} - set(NOT_EXPERIMENTS)


def test_the_readmes_table_and_the_experiments_page_name_every_experiment():
    table = section(README.read_text(), "The experiments")
    in_table = {name for row in re.findall(r"^\| (`.+?) \|", table, re.M)
                for name in re.findall(r"`(\w+)`", row)}
    assert in_table == experiment_files()
    headings = " ".join(m.group(2) for m in HEADING.finditer((REPO / "docs" / "experiments.md")
                                                             .read_text()))
    assert {n for n in experiment_files() if f"`{n}`" not in headings} == set()
