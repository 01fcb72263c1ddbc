"""The attention view (``v``): what each head of a transformer block looks at in the photo.

In the Grad-CAM tab, in the map's place: the class token's attention over the patch grid,
one small map per head over the photo (``render``'s previews, as the map is drawn), for
the block highlighted in the tree. ``[`` and ``]`` step through the blocks, ``h`` and
``H`` through the heads one at a time (large) and back to all of them. The view owns its
worker: one no-grad forward records every block at once (``camlink.attention_shot``), so
stepping never runs the model again; a new photo or model computes a new shot.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from layerscope.errors import LayerscopeError
from layerscope.tui import failures
from layerscope.tui.camlayout import map_cells
from layerscope.tui.lazy import camlink

if TYPE_CHECKING:
    from layerscope.tui.camlink import AttentionShot
    from layerscope.tui.session import Session

STEPS = ("next_block", "previous_block", "next_head", "previous_head")
GAP = 1  # the column between two tiles


def grid_columns(heads: int, width: int, height: int, photo_hw: tuple[int, int]) -> tuple[int, tuple[int, int]]:
    """The number of columns whose tiles (a label row over each map) give every head's map the
    most cells in ``width``×``height``, and those cells."""
    best = (1, (0, 0))
    for columns in range(1, heads + 1):
        rows = math.ceil(heads / columns)
        cells = map_cells((width - GAP * (columns - 1)) // columns, height // rows - 1, photo_hw)
        if cells[0] * cells[1] > best[1][0] * best[1][1]:
            best = (columns, cells)
    return best


class AttentionView(Vertical):
    """The per-head maps of one block, computed once per photo and model."""

    class Computed(Message):
        def __init__(self, shot: AttentionShot) -> None:
            super().__init__()
            self.shot = shot

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shot: AttentionShot | None = None
        self.block = 0
        self.head: int | None = None  # None: every head
        self.opened_on = ""  # the tree's node the view was opened on: its block is shown when the shot arrives
        self.display = False

    def compose(self):
        yield Static(Text("", style="dim"), id="attn-info")
        yield Static("", id="attn-grid")

    # --- opening, closing, stepping --------------------------------------------------

    def toggle(self, session: Session, layer: str) -> bool:
        """``v``: open on ``layer``'s block (computing the shot when the photo or model is new), or
        close; says whether the view is open now."""
        if self.display:
            self.close()
            return False
        self._show(True)
        self.opened_on, self.head = layer, None
        if self.shot is not None and (self.shot.model, self.shot.photo) == (id(session.loaded.model), session.image):
            self._select()
        else:
            self.shot = None
            self._info(Text(f"recording every block's attention on {session.image.name}…", "dim"))
            self.query_one("#attn-grid", Static).update("")
            self.compute(session, session.image)
        return self.display

    def close(self) -> None:
        self._show(False)

    def _show(self, shown: bool) -> None:
        """The view takes the map's place (``app.tcss``: ``.attending`` hides the ``CamPanel``)."""
        self.display = shown
        if self.parent is not None:
            self.parent.set_class(shown, "attending")

    def forget(self) -> None:
        """Another photo or model: the shot no longer applies, and the view closes."""
        self.workers.cancel_group(self, "attention")
        self.shot = None
        self.close()

    def step(self, what: str) -> str | None:
        """``[`` ``]`` ``h`` ``H``; returns why nothing moved, if so."""
        if not self.display:
            return "v opens the attention view on a transformer block first"
        if self.shot is None:
            return "still recording the attention… a moment"
        blocks, heads = len(self.shot.maps.blocks), self.shot.maps.heads
        if what in ("next_block", "previous_block"):
            self.block = (self.block + (1 if what == "next_block" else -1)) % blocks
        else:
            order = [None, *range(heads)]  # every head, then one at a time
            self.head = order[(order.index(self.head) + (1 if what == "next_head" else -1)) % len(order)]
        self.draw()
        return None

    # --- the worker ------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="attention", description="recording the attention")
    def compute(self, session: Session, photo: Path) -> None:
        self.post_message(self.Computed(camlink.attention_shot(session, photo)))

    def on_attention_view_computed(self, message: AttentionView.Computed) -> None:
        if self.display:
            self.shot = message.shot
            self._select()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failed shot closes the view and says why in one line (a bug: logged, as the screen's
        workers' are: ``failures.describe``)."""
        worker = event.worker
        if worker.group == "attention" and event.state == WorkerState.ERROR and worker.error is not None:
            self.close()
            failure = failures.describe(worker.error, worker.description, getattr(self.screen, "log_path", Path()))
            self.notify(
                failure.text,
                title="No attention view",
                severity=failure.severity,
                markup=False,
                timeout=12 if failure.bug else 8,
            )

    def _select(self) -> None:
        assert self.shot is not None
        try:
            self.block = self.shot.maps.index(self.opened_on)
        except LayerscopeError as exc:
            self.close()
            self.notify(str(exc), title="No attention here", severity="warning", markup=False, timeout=6)
            return
        self.draw()

    # --- drawing ---------------------------------------------------------------------

    def on_resize(self) -> None:
        self.call_after_refresh(self.draw)

    def draw(self) -> None:
        shot = self.shot
        if shot is None or not self.display:
            return
        maps = shot.maps
        heads = range(maps.heads) if self.head is None else [self.head]
        which = "every head" if self.head is None else f"head {self.head + 1} of {maps.heads}"
        self._info(
            Text.assemble(
                ("block ", "dim"),
                (maps.blocks[self.block], "bold"),
                (f" ({self.block + 1}/{len(maps.blocks)})  ", "dim"),
                (which, "bold"),
                (f"\n{maps.query} → patches, each head on its own scale · [ ] block  h H head", "dim"),
            )
        )
        grid = self.query_one("#attn-grid", Static)
        hw = (shot.image.height, shot.image.width)
        columns, (width, height) = grid_columns(len(heads), grid.size.width, grid.size.height, hw)
        if width == 0:
            grid.update(Text("too small for the maps: widen the terminal", "dim"))
            return
        ascii_only = bool(os.environ.get("NO_COLOR"))
        table = Table.grid(padding=(0, GAP, 0, 0))
        for _ in range(columns):
            table.add_column(width=width, no_wrap=True)
        tiles = [
            Group(
                Text(f"head {h + 1}", "bold" if self.head is not None else "dim"),
                shot.tile(self.block, h, width, height, ascii_only=ascii_only),
            )
            for h in heads
        ]
        for start in range(0, len(tiles), columns):
            table.add_row(*tiles[start : start + columns])
        grid.update(table)

    def _info(self, text: Text) -> None:
        self.query_one("#attn-info", Static).update(text)
