"""SVG snapshots of the Lens tab (``L``) at 80×24 and 120×40 on the counting Llama of
tests/lm_models.py (seeded: the same table on every machine): the layer × token table, the
highlighted cell's top 5 and its block's heads."""

from __future__ import annotations

import pytest

from layerscope.models import load_model
from layerscope.tui.app import LayerscopeApp
from tui_helpers import enter_line, settle


@pytest.fixture
def counter(counter_folder, monkeypatch):
    """Opened as ``counter`` from its parent folder: the header and the lens name it the same on
    every machine (the folder itself is under pytest's temporary path)."""
    monkeypatch.chdir(counter_folder.parent)
    return load_model("counter")


def lens_on(prompt: str, *more: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await enter_line(pilot, "L", prompt)
        await settle(pilot, rounds=5)  # the lens, then the highlighted cell's heads
        if more:
            await pilot.press(*more)
            await settle(pilot, rounds=5)
        pilot.app.clear_notifications()
        await settle(pilot)

    return run_before


def test_lens_tab_at_80x24(snap_compare, counter):
    app = LayerscopeApp(counter, spec="counter")
    assert snap_compare(app, terminal_size=(80, 24), run_before=lens_on("3 5 7 9"))


def test_lens_tab_at_120x40(snap_compare, counter):
    """Eight tokens counted in twos; the cursor one row up and one token left (model.layers.0 at 6:15)."""
    app = LayerscopeApp(counter, spec="counter")
    assert snap_compare(app, terminal_size=(120, 40), run_before=lens_on("3 5 7 9 11 13 15 17", "up", "left"))
