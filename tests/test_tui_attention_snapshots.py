"""SVG snapshots of the attention view (``v``) at 80×24 and 120×40: every head of a block over
the bundled photo, then one head alone (``h``). The seeded random-weight ViT of
tests/attention_models.py: fast, and the same maps on every machine."""

from __future__ import annotations

import pytest

from layerscope.models import load_model
from layerscope.tui.app import LayerscopeApp
from tui_helpers import enter_line, settle


@pytest.fixture(scope="module")
def vit():
    return load_model("attention_models:tiny_vit")


def view_on(block: str, *more: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await enter_line(pilot, "slash", block)
        await pilot.press("v", *more)
        await settle(pilot, rounds=5)  # the view's worker, then its redraw after the resize it causes
        pilot.app.clear_notifications()
        await settle(pilot)

    return run_before


def test_attention_view_every_head_at_80x24(snap_compare, vit):
    app = LayerscopeApp(vit, spec="attention_models:tiny_vit")
    assert snap_compare(app, terminal_size=(80, 24), run_before=view_on("blocks.2.attn"))


def test_attention_view_every_head_at_120x40(snap_compare, vit):
    app = LayerscopeApp(vit, spec="attention_models:tiny_vit")
    assert snap_compare(app, terminal_size=(120, 40), run_before=view_on("blocks.2.attn"))


def test_attention_view_one_head_at_120x40(snap_compare, vit):
    app = LayerscopeApp(vit, spec="attention_models:tiny_vit")
    assert snap_compare(app, terminal_size=(120, 40), run_before=view_on("blocks.1", "h", "h"))
