"""The Lens tab: what each layer of a causal language model predicts next for a typed prompt.

The table is ``layerscope lens``'s (the logit lens, ``layerscope.lens.logit_lens``): one row per
layer (the embeddings, then every decoder block), one column per prompt token, each cell the
layer's top next token coloured by its probability. The highlighted cell's top-k and, for a
block, its heads' attention from that position (``layerscope.lens.head_attention``) show
below. The panel owns its workers; the engine is imported when first used (it imports torch).
The tab is hidden for a model that is not a causal language model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState, get_current_worker

from layerscope.errors import LayerscopeError
from layerscope.tui import failures
from layerscope.tui.screens.image_path import MAX_PROMPT
from layerscope.tui.screens.lens_prompt import LensPromptScreen

if TYPE_CHECKING:
    from layerscope.lens import HeadAttention, LanguageModel, LensResult
    from layerscope.models.loaded import LoadedModel

TOP_K = 5  # the guesses kept per cell (the highlighted cell shows them)
TOKEN_CELLS = 8  # a token is cut to this many cells in the table
# probability → style, from sure to unsure
SHADES = ((0.9, "bold green"), (0.5, "green"), (0.2, "yellow"), (0.0, "dim"))
HINT = "L types a prompt · tab, then arrows: a cell's guesses and heads"


def token_text(token: str) -> str:
    """A token as a cell shows it: escapes visible, spaces as ``·``, cut to ``TOKEN_CELLS``."""
    text = repr(token)[1:-1].replace(" ", "·") or "''"
    return text if len(text) <= TOKEN_CELLS else text[: TOKEN_CELLS - 1] + "…"


def prob(p: float) -> str:
    """A probability in four cells (``.83``, ``1.00``): a token more fits at 80 columns."""
    return f"{p:.2f}".removeprefix("0")


def shade(p: float) -> str:
    return next(style for floor, style in SHADES if p >= floor)


def short_names(layers: list[str]) -> list[str]:
    """The row labels: the blocks' shared leading module path (``model.``) left out, so that
    more tokens fit beside them (the detail line names the block in full)."""
    parents = [name.rsplit(".", 1)[0] for name in layers if "." in name]  # model.layers
    common = os.path.commonprefix(parents) if parents else ""
    common = common[: common.rfind(".") + 1]  # model.
    return [name.removeprefix(common) for name in layers]


def check_prompt(prompt: str) -> None:
    """What the app refuses before any work: an empty prompt, or one past the prompt box's size."""
    if not prompt.strip():
        raise LayerscopeError("the prompt is empty; L types one")
    if len(prompt) > MAX_PROMPT:
        raise LayerscopeError(f"the prompt is {len(prompt):,} characters; the app takes at most {MAX_PROMPT:,}")


def lens_refusal(loaded: LoadedModel) -> str | None:
    """Why ``loaded`` has no lens (one line), or None for a causal language model."""
    if loaded.source != "huggingface":  # says so without importing transformers
        return (
            f"{loaded.spec} is a {loaded.source} model ({type(loaded.model).__name__}); the Lens tab is for "
            "a Hugging Face causal language model"
        )
    from layerscope.lens.language import check_causal_lm

    try:
        check_causal_lm(loaded)
    except LayerscopeError as exc:
        return str(exc)
    return None


class LensPanel(Vertical):
    """The lens table for one prompt, its highlighted cell's guesses and heads."""

    class Computed(Message):
        def __init__(self, result: LensResult, prompt: str) -> None:
            super().__init__()
            self.result, self.prompt = result, prompt

    class HeadsComputed(Message):
        def __init__(self, heads: HeadAttention) -> None:
            super().__init__()
            self.heads = heads

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lm: LanguageModel | None = None  # the model on screen with its tokenizer, once read
        self.result: LensResult | None = None
        self.prompt = ""  # the prompt ``result`` is for

    def compose(self):
        yield Static(Text("for a causal language model: " + HINT, style="dim"), id="lens-info")
        yield DataTable(id="lens-table", cursor_type="cell", cell_padding=0)
        yield Static("", id="lens-detail")
        yield Static("", id="lens-heads")

    # --- the model and the prompt ----------------------------------------------------

    def ask(self, loaded: LoadedModel, shown: Callable[[], None]) -> None:
        """``L``: type a prompt (the last one offered again) and read it; ``shown`` brings the tab
        forward once the prompt is taken. A model without a lens says why."""
        why = lens_refusal(loaded)
        if why is not None:
            self.notify(why, title="No lens", severity="warning", markup=False, timeout=6)
            return

        def typed(prompt: str | None) -> None:
            if prompt is None:
                return
            try:
                self.run(loaded, prompt)
            except LayerscopeError as exc:
                self.notify(str(exc), title="Lens not read", severity="warning", markup=False, timeout=6)
                return
            shown()

        self.app.push_screen(LensPromptScreen(self.prompt), typed)

    def forget(self) -> None:
        """Another model: the table, the prompt and the tokenizer go."""
        self.workers.cancel_group(self, "lens")
        self.workers.cancel_group(self, "lens-heads")
        self.lm, self.result, self.prompt = None, None, ""
        self.query_one(DataTable).clear(columns=True)
        self._info(Text("for a causal language model: " + HINT, style="dim"))
        self.query_one("#lens-detail", Static).update("")
        self.query_one("#lens-heads", Static).update("")

    def run(self, loaded: LoadedModel, prompt: str) -> None:
        """Read ``prompt`` (checked here first: a bad one raises one line and nothing changes)."""
        check_prompt(prompt)
        self._info(Text(f"reading {prompt[:60]!r}…", style="dim"))
        self.compute(loaded, prompt)

    def _language_model(self, loaded: LoadedModel) -> LanguageModel:
        from layerscope.lens import language_model

        if self.lm is None or self.lm.loaded is not loaded:
            self.lm = language_model(loaded)
        return self.lm

    # --- the workers -----------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="lens", description="reading the prompt")
    def compute(self, loaded: LoadedModel, prompt: str) -> None:
        from layerscope.lens import logit_lens

        result = logit_lens(self._language_model(loaded), prompt, top_k=TOP_K)
        if not get_current_worker().is_cancelled:  # not a prompt typed (or a model opened) since
            self.post_message(self.Computed(result, prompt))

    @work(thread=True, exclusive=True, exit_on_error=False, group="lens-heads", description="recording the heads")
    def compute_heads(self, lm: LanguageModel, prompt: str, layer: str, position: int) -> None:
        from layerscope.lens import head_attention

        self.post_message(self.HeadsComputed(head_attention(lm, prompt, layer, position)))

    def on_lens_panel_computed(self, message: LensPanel.Computed) -> None:
        self.result, self.prompt = message.result, message.prompt
        self.draw()

    def on_lens_panel_heads_computed(self, message: LensPanel.HeadsComputed) -> None:
        heads = message.heads
        if self.result is None or self._cell() != (heads.layer, heads.position):
            return  # the cursor moved on meanwhile
        self.query_one("#lens-heads", Static).update(heads_table(heads))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A refused prompt (or a bug: logged) is one notification; the table shown stays."""
        worker = event.worker
        if worker.group not in ("lens", "lens-heads") or event.state != WorkerState.ERROR or worker.error is None:
            return
        failure = failures.describe(worker.error, worker.description, getattr(self.screen, "log_path", Path()))
        if worker.group == "lens":
            self._info(self._summary() if self.result is not None else Text(failure.text, style="red"))
        self.notify(
            failure.text,
            title="Lens not read" if worker.group == "lens" else "No heads",
            severity=failure.severity,
            markup=False,
            timeout=12 if failure.bug else 8,
        )

    # --- drawing ---------------------------------------------------------------------

    def draw(self) -> None:
        result = self.result
        assert result is not None
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.fixed_columns = 1
        table.add_column("layer", key="layer")
        for i in result.positions:
            table.add_column(f"{i}:{token_text(result.tokens[i])} ", key=str(i))
        labels = short_names([layer.layer for layer in result.layers])
        for layer, label in zip(result.layers, labels, strict=True):
            cells = [
                Text(f"{token_text(top[0].token)} {prob(top[0].p)} ", style=shade(top[0].p)) for top in layer.positions
            ]
            table.add_row(Text(label + " ", style="cyan"), *cells, key=layer.layer)
        self._info(self._summary())
        table.move_cursor(row=len(result.layers) - 1, column=len(result.positions))  # the model's own guess
        table.focus()

    def _summary(self) -> Text:
        assert self.result is not None
        return Text.assemble(
            (repr(self.prompt[:60]), "bold"),
            (f" ({len(self.result.tokens)} tokens): each layer's top next token, p\n{HINT}", "dim"),
        )

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        self.describe_cell()

    def _cell(self) -> tuple[str, int] | None:
        """The highlighted cell as (layer, token position), None on the layer column."""
        result, table = self.result, self.query_one(DataTable)
        column = table.cursor_coordinate.column
        if result is None or column == 0 or not result.layers:
            return None
        return result.layers[table.cursor_coordinate.row].layer, result.positions[column - 1]

    def describe_cell(self) -> None:
        """The highlighted cell's top-k; for a block, its heads' attention from that position."""
        cell, result = self._cell(), self.result
        detail, heads = self.query_one("#lens-detail", Static), self.query_one("#lens-heads", Static)
        heads.update("")
        if cell is None or result is None:
            detail.update(Text("a cell shows its layer's top guesses and heads", style="dim"))
            return
        layer, position = cell
        top = result.layers[[x.layer for x in result.layers].index(layer)].positions[result.positions.index(position)]
        guesses = [(f"{token_text(g.token)}\u00a0{prob(g.p)}", shade(g.p)) for g in top]
        detail.update(
            Text.assemble(
                (f"{layer} after {position}:{token_text(result.tokens[position])} → ", "dim"),
                *[part for g in guesses for part in (g, ("  ", ""))],
            )
        )
        from layerscope.lens import EMBEDDINGS

        if layer != EMBEDDINGS and self.lm is not None:
            heads.update(Text(f"recording {layer}'s heads…", style="dim"))
            self.compute_heads(self.lm, self.prompt, layer, position)

    def select_layer(self, name: str) -> None:
        """The tree's node ``name`` (a block or inside one) selects that block's row."""
        if self.result is None:
            return
        rows = [layer.layer for layer in self.result.layers]
        found = next((i for i, row in enumerate(rows) if name == row or name.startswith(row + ".")), None)
        if found is not None:
            table = self.query_one(DataTable)
            table.move_cursor(row=found, column=max(table.cursor_coordinate.column, 1))

    def _info(self, text: Text) -> None:
        self.query_one("#lens-info", Static).update(text)


def heads_table(heads: HeadAttention) -> Group:
    """One row per head: its attention from the position over each token up to it, shaded."""
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="dim")
    table.add_column("head", style="cyan", no_wrap=True)
    seen = range(heads.position + 1)  # causal: nothing after the position
    for t in seen:
        table.add_column(f"{t}:{token_text(heads.tokens[t])}", justify="right", no_wrap=True)
    for h, row in enumerate(heads.heads):
        table.add_row(str(h), *[Text(prob(row[t]), style=shade(row[t])) for t in seen])
    title = f"{heads.layer}'s heads: attention from {heads.position}:{token_text(heads.tokens[heads.position])}"
    return Group(Text(title, style="dim"), table)
