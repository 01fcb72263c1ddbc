"""The app's Lens tab (``L``): on the counting Llama (tests/lm_models.py) it shows what
``layerscope lens`` prints for the same prompt, refuses a bad prompt in one line and keeps
what it showed, and stays hidden for a model that is not a causal language model."""

from __future__ import annotations

import json

import pytest
from textual.widgets import DataTable, TabbedContent

from layerscope.cli.main import main
from layerscope.lens import language_model, logit_lens
from layerscope.models import load_model
from layerscope.tui.app import LayerscopeApp
from layerscope.tui.screens.image_path import MAX_PROMPT
from layerscope.tui.screens.lens_prompt import LensPromptScreen
from layerscope.tui.widgets.lens import LensPanel, prob
from tui_helpers import enter_line, notifications, paste, screen_text, settle

SIZE = (120, 40)
PROMPT = "3 5 7 9"


@pytest.fixture(scope="module")
def counter(counter_folder):
    return load_model(str(counter_folder))


def table_cells(app) -> dict[str, list[str]]:
    """The Lens table as drawn: each row's layer and its cells' text."""
    table = app.main.query_one("#lens-table", DataTable)
    rows = [[str(cell).strip() for cell in table.get_row_at(i)] for i in range(table.row_count)]
    return {str(key.value): row[1:] for key, row in zip(table.rows, rows, strict=True)}


async def read_prompt(pilot, prompt: str) -> None:
    await enter_line(pilot, "L", prompt)
    await settle(pilot, rounds=5)


async def test_the_table_is_the_logit_lens_and_the_cli_json(counter, counter_folder, capsys):
    assert main(["lens", str(counter_folder), "--prompt", PROMPT, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = {
        layer["layer"]: [f"{top['top'][0]['token']} {prob(top['top'][0]['p'])}" for top in layer["positions"]]
        for layer in printed["layers"]
    }
    app = LayerscopeApp(counter, spec=str(counter_folder))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await read_prompt(pilot, PROMPT)
        assert app.main.query_one(TabbedContent).active == "lens"
        assert table_cells(app) == expected
        assert [str(app.main.query_one("#lens-table", DataTable).get_row_at(i)[0]).strip() for i in range(3)] == [
            "embeddings",
            "layers.0",
            "layers.1",
        ]  # the blocks' shared "model." left out
        result = logit_lens(language_model(counter), PROMPT)
        assert app.main.query_one(LensPanel).result == result  # the same engine call, the same numbers
        assert list(expected)[-1] == "model.layers.1" and expected["model.layers.1"][-1].startswith("11 ")
        shown = screen_text(app).replace("\u00a0", " ")  # a guess and its p do not part at a wrap
        assert "model.layers.1 after 3:9 → 11 .99" in shown  # the model's own guess is highlighted
        assert "model.layers.1's heads: attention from 3:9" in shown and "head 0:3 1:5 2:7 3:9" in shown


async def test_a_bad_prompt_is_one_line_and_the_tab_keeps_its_table(counter, counter_folder):
    app = LayerscopeApp(counter, spec=str(counter_folder))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await read_prompt(pilot, PROMPT)
        before, panel = table_cells(app), app.main.query_one(LensPanel)
        await read_prompt(pilot, "   ")
        assert notifications(app)[-1] == "Lens not read: the prompt is empty; L types one"
        too_long = " ".join(str(i % 30) for i in range(20))  # 20 tokens; the model reads 16
        await read_prompt(pilot, too_long)
        said = notifications(app)[-1]
        assert said.startswith("Lens not read: the prompt is 20 tokens;") and "\n" not in said
        assert table_cells(app) == before and panel.prompt == PROMPT and not app.main.query(".-error")
        assert repr(PROMPT) in screen_text(app)  # the info line is back to the prompt shown
        await pilot.press("L")  # the box offers the last prompt; a paste past the cap is refused whole
        assert isinstance(app.screen, LensPromptScreen)
        await paste(pilot, "1 " * MAX_PROMPT)
        field = app.screen.query_one("#lens-prompt")
        assert len(field.value) <= MAX_PROMPT and field.value == PROMPT
        await pilot.press("escape")
        await settle(pilot)
        assert table_cells(app) == before


async def test_the_tree_selects_the_blocks_row(counter, counter_folder):
    app = LayerscopeApp(counter, spec=str(counter_folder))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await read_prompt(pilot, PROMPT)
        await enter_line(pilot, "slash", "layers.0.mlp")
        await settle(pilot)
        table = app.main.query_one("#lens-table", DataTable)
        assert table.cursor_coordinate.row == 1  # embeddings, model.layers.0, model.layers.1


async def test_a_model_without_a_lens_hides_the_tab_and_l_says_why(resnet18_loaded):
    app = LayerscopeApp(resnet18_loaded, spec="resnet18")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "Lens" not in screen_text(app).splitlines()[1]
        await pilot.press("L")
        await settle(pilot)
        said = notifications(app)[-1]
        assert said.startswith("No lens: resnet18 is a torchvision model (ResNet)") and "\n" not in said
        assert not isinstance(app.screen, LensPromptScreen)
