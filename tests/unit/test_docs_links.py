"""Links between the Markdown pages (README.md, docs/*.md) reach a file and, for ``page.md#part``,
a heading whose GitHub-style slug is ``part``: so they work on a forge as well as in the built
site, where Sphinx checks them too but also accepts its own ids (in process)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from tests.helpers.server import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^()\s]*?)(?:#([^()\s]+))?\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$")
FENCE = re.compile(r"^(```|~~~)")


def github_slug(title: str) -> str:
    """A heading's anchor as GitHub (and MyST's "github" slugs, see docs/conf.py) makes it."""
    text = re.sub(r"[`*_]{1,2}(.+?)[`*_]{1,2}", r"\1", title)  # the heading's rendered text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text.lower().replace(" ", "-"))


def prose_lines(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


@functools.cache
def anchors(page: Path) -> set[str]:
    return {github_slug(match[1]) for line in prose_lines(page) if (match := HEADING.match(line))}


def broken_links(page: Path) -> list[str]:
    broken = []
    for line in prose_lines(page):
        for target, anchor in LINK.findall(line):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            linked = (page.parent / target).resolve() if target else page
            if not linked.exists():
                broken.append(f"{target}: no such file")
            elif anchor and anchor not in anchors(linked):
                broken.append(f"{target}#{anchor}: no such heading in {linked.name}")
    return broken


def test_links_between_pages_reach_a_file_and_a_heading():
    broken = {page.relative_to(REPO).as_posix(): broken_links(page) for page in PAGES}
    assert not {page: links for page, links in broken.items() if links}


def test_slugs_are_githubs():
    assert github_slug("HTTPS, HTTP/2 and HTTP/3") == "https-http2-and-http3"
    assert github_slug("With `manage.py test`") == "with-managepy-test"
    assert github_slug("With systemd (socket activation)") == "with-systemd-socket-activation"
