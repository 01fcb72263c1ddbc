"""docs/project/layout.md names every module and package at the top of the package, so the
page cannot go stale silently again (issue 27, point 6: it had left out activations/ and eight
modules)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "app" / "layerscope"
PAGE = ROOT / "docs" / "project" / "layout.md"


def top_level_entries() -> list[str]:
    """``name.py`` for each module, ``name/`` for each package, at the top of ``layerscope``."""
    modules = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    packages = [f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    return sorted(modules + packages)


def test_the_layout_page_names_every_top_level_module_and_package():
    text = PAGE.read_text(encoding="utf-8")
    entries = top_level_entries()
    assert "activations/" in entries and "errors.py" in entries
    missing = [e for e in entries if not re.search(rf"(?<![\w/.]){re.escape(e)}", text)]
    assert missing == []


def test_every_tui_module_named_on_the_page_exists():
    """The app's lines name real files (a renamed one shows here)."""
    text = PAGE.read_text(encoding="utf-8")
    block = text.split("  tui/", 1)[1].split("\n  entry.py", 1)[0]
    named = set(re.findall(r"\b(\w+\.py)\b", block))
    assert named and all(next((PACKAGE / "tui").rglob(n), None) is not None for n in named), named


def test_the_docs_index_links_every_guide_page():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    guides = sorted(p.name for p in (ROOT / "docs" / "guide").glob("*.md"))
    assert "diff.md" in guides
    assert [g for g in guides if f"(guide/{g})" not in index] == []
