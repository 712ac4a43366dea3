"""Sphinx configuration of django-asgiserve's documentation.

Build it with warnings as errors (what CI runs):
``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
The pages are MyST Markdown, so they read as Markdown on a forge too.
"""

from __future__ import annotations

import re
from pathlib import Path

from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parent.parent

project = "django-asgiserve"
author = "django-asgiserve developers"
copyright = f"2026, {author}"
# The package's one version source, read without importing the package.
_init = (ROOT / "django_asgiserve" / "__init__.py").read_text()
release = version = re.findall(r'^__version__ = "([^"]+)"', _init, re.M)[0]

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]

# ":::{option}" blocks read as plain Markdown on a forge; "## Title" anchors are linkable
# as page.md#title, with the forge's slugs, so that the same links work in both places.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
myst_heading_slug_func = "github"

html_theme = "furo"
html_title = f"django-asgiserve {release}"
html_theme_options = {"navigation_with_keys": True}
# Every cross-reference must resolve: a link to an option or setting that no longer exists
# fails the build (-W), as a stale page would mislead.
nitpicky = True


def setup(app: Sphinx) -> None:
    # ASGISERVE keys as Django documents its settings: an index entry and a target that
    # {setting}`BACKEND` links to, checked by the build (an unknown one is a warning).
    app.add_object_type("setting", "setting", indextemplate="pair: %s; ASGISERVE setting")
