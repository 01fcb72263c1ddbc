"""The app and transformers: the method picker offers the attention methods for a ViT only, and
the attention view (``v``) shows the class token's attention per head, block by block.

A seeded random-weight timm ViT (tests/attention_models.py): every key costs milliseconds."""

from __future__ import annotations

import pytest

from attention_models import HEADS
from layerscope.models import load_model
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.screens.pickers import MethodPicker
from layerscope.tui.widgets.attention import AttentionView
from layerscope.tui.widgets.gradcam import CamPanel
from tui_helpers import enter_line, notifications, screen_text, settle

SIZE = (100, 30)
SPEC = "attention_models:tiny_vit"
ATTENDING = ("rollout", "gradrollout", "legrad")


@pytest.fixture(scope="module")
def vit():
    return load_model(SPEC)


async def picker_methods(pilot) -> list[str]:
    """``m`` once the model has loaded: the methods the picker offers."""
    await settle(pilot)
    await pilot.press("m")
    await pilot.pause()
    return pilot.app.screen.methods if isinstance(pilot.app.screen, MethodPicker) else []


async def test_the_picker_offers_a_vit_the_attention_methods_and_rollout_maps_class_blind(vit):
    app = LayerscopeApp(vit, spec="tiny_vit")
    async with app.run_test(size=SIZE) as pilot:
        assert (await picker_methods(pilot))[-3:] == list(ATTENDING) and "gradrollout" in screen_text(app)
        await pilot.press(*["down"] * 9, "enter")  # rollout, after the nine CAM methods
        await pilot.pause()
        assert app.main.session.method == "rollout"
        await pilot.press("g")
        await settle(pilot)
        shown = screen_text(app)
        assert "method rollout" in shown and "map rollout at blocks.2.norm1 for no class (class-blind)" in shown, (
            notifications(app)
        )


async def test_the_picker_offers_a_convnet_the_cam_methods_only(resnet18_loaded):
    app = LayerscopeApp(resnet18_loaded, spec="resnet18")
    async with app.run_test(size=SIZE) as pilot:
        offered = await picker_methods(pilot)
        assert "gradcam" in offered and "ablationcam" in offered
        assert not set(ATTENDING) & set(offered) and "rollout" not in screen_text(app)


async def open_view(pilot, block: str) -> AttentionView:
    """``/`` BLOCK enter, then ``v``: the view on that block, its shot recorded."""
    await settle(pilot)
    await enter_line(pilot, "slash", block)
    await pilot.press("v")
    await settle(pilot)
    return pilot.app.query_one(AttentionView)


async def test_v_shows_every_heads_map_of_the_highlighted_block_and_the_keys_step_it(vit):
    app = LayerscopeApp(vit, spec="tiny_vit")
    async with app.run_test(size=SIZE) as pilot:
        view = await open_view(pilot, "blocks.1.attn")
        assert view.display and not app.query_one(CamPanel).display
        assert view.shot is not None and view.shot.maps.blocks == ("blocks.0", "blocks.1", "blocks.2")
        shown = screen_text(app)
        assert "block blocks.1 (2/3)  every head" in shown and all(f"head {h}" in shown for h in range(1, HEADS + 1))
        assert "class token → patches, each head on its own scale" in shown and shown.count("▀") > 200
        forwards = []
        handle = vit.model.register_forward_hook(lambda *_: forwards.append(1))
        await pilot.press("right_square_bracket")
        assert view.block == 2 and "block blocks.2 (3/3)" in screen_text(app)
        await pilot.press("right_square_bracket", "left_square_bracket", "left_square_bracket")
        assert view.block == 1
        await pilot.press("h")
        assert view.head == 0 and "head 1 of 6" in screen_text(app) and "head 2" not in screen_text(app)
        await pilot.press("H", "H")
        assert view.head == HEADS - 1
        await settle(pilot)
        handle.remove()
        assert not forwards  # stepping redraws the recorded shot: no forward pass
        await pilot.press("v")
        await pilot.pause()
        assert not view.display and app.query_one(CamPanel).display


async def test_v_on_a_layer_without_attention_or_a_convnet_is_one_line_and_the_map_stays(vit, resnet18_loaded):
    app = LayerscopeApp(vit, spec="tiny_vit")
    async with app.run_test(size=SIZE) as pilot:
        view = await open_view(pilot, "head_drop")
        assert not view.display and app.query_one(CamPanel).display
        assert any("'head_drop' runs no attention" in n for n in notifications(app)), notifications(app)
        await pilot.press("h")
        assert any("v opens the attention view" in n for n in notifications(app))
    app = LayerscopeApp(resnet18_loaded, spec="resnet18")
    async with app.run_test(size=SIZE) as pilot:
        view = await open_view(pilot, "layer4")
        assert not view.display and app.is_running
        assert any(
            "has no global self-attention" in n and "\n" not in n.split(": ", 1)[1] for n in notifications(app)
        ), notifications(app)


async def test_help_names_the_view_keys_as_typed(vit):
    app = LayerscopeApp(vit, spec="tiny_vit")
    async with app.run_test(size=(120, 60)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        shown = screen_text(app)
        assert "Attention view: the next block" in shown and "bracket" not in shown
        assert any(line.split()[:1] == ["]"] for line in (row.strip(" │▌▐┃") for row in shown.splitlines()))
