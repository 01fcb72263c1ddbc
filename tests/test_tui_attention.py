"""The app and transformers: the method picker offers the attention methods for a ViT only, and
the attention view (``v``) shows the class token's attention per head, block by block.

A seeded random-weight timm ViT (tests/attention_models.py): every key costs milliseconds."""

from __future__ import annotations

import pytest
from tui_helpers import notifications, screen_text, settle

from layerscope.models import load_model
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.screens.pickers import MethodPicker

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
            notifications(app))


async def test_the_picker_offers_a_convnet_the_cam_methods_only(resnet18_loaded):
    app = LayerscopeApp(resnet18_loaded, spec="resnet18")
    async with app.run_test(size=SIZE) as pilot:
        offered = await picker_methods(pilot)
        assert "gradcam" in offered and "ablationcam" in offered
        assert not set(ATTENDING) & set(offered) and "rollout" not in screen_text(app)
