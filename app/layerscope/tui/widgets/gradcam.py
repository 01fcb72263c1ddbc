"""The Grad-CAM tab: the heatmap over the photo, with its method, class, score, layer and top-5.

The panel keeps the Grad-CAM state of the model on screen: the map shown (a
``CamView``), the photo's explainer (its last pass, so moving the target among the
layers it hooked redraws without a new forward pass), the map's scores, and whether
a map or a ranking is running (one at a time; escape stops it). The main screen
runs the workers; the map's progress, drawing and scores come back here as
messages (``CamProgress``, ``CamDone``, ``ScoreProgress``, ``CamScored``).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import ProgressBar, Static

from layerscope.tui import camlayout, camtext
from layerscope.tui.messages import CamDone, CamProgress, CamScored, ScoreProgress
from layerscope.tui.widgets.curves import CurvesPlot

if TYPE_CHECKING:
    from layerscope.cam import PhotoExplainer
    from layerscope.cam.metrics import Faithfulness
    from layerscope.tui.camlink import CamView
    from layerscope.tui.session import Session


def pixel_widget(protocol: str) -> Widget:
    """textual-image's widget for ``protocol`` ("kitty" or "sixel", as ``layerscope.presentation.pixels`` found);
    imported only for a terminal that draws pixels (``launch`` imported it before the app ran)."""
    from textual_image.widget import SixelImage, TGPImage

    widget = (SixelImage if protocol == "sixel" else TGPImage)(id="cam-pixels")
    widget.styles.width = "auto"
    widget.styles.height = "1fr"
    return widget


class MapPreview(Static):
    """The map's cells, redrawn for whatever room it has: the info above it and the top-5
    change size after the map is drawn (``camlayout`` puts the top-5 under or beside it)."""

    def on_resize(self) -> None:
        self.query_ancestor(CamPanel).place()


class CamPanel(Vertical):
    """Shows one ``CamView``; keeps the photo's explainer and what is running.

    ``pixels`` ("kitty" / "sixel"): the terminal draws the overlay's pixels at full resolution."""

    def __init__(self, pixels: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pixels = pixels
        self.view: CamView | None = None
        self.explainer: PhotoExplainer | None = None
        self.session: Session | None = None
        self.running = False  # a map or a ranking is being computed: one at a time
        self.scores: Faithfulness | None = None  # the shown map's
        self.scores_note = ""  # where its scores stand, while there are none
        self.scoring = False  # the map's worker is still scoring it; a new g or r stops that
        self.what = "the map"  # what escape stops while running
        self.curves = False  # p: the deletion and insertion curves in the map's place
        self.placed: camlayout.CamLayout | None = None  # where the map and the top-5 went
        self._cancel = threading.Event()

    def compose(self):
        yield Static(Text("", style="dim"), id="cam-info")
        yield ProgressBar(id="cam-progress", show_eta=False)
        with Horizontal(id="cam-body"):
            preview = MapPreview("", id="cam-preview")
            preview.display = not self.pixels
            yield preview
            if self.pixels:
                yield pixel_widget(self.pixels)
            yield CurvesPlot(id="cam-curves")
            yield Static("", id="cam-side")
        yield Static("", id="cam-top5")

    # --- showing ---------------------------------------------------------------------

    def describe(self, session: Session, view: CamView | None = None) -> None:
        """The info lines for ``session``'s choices and ``view``; without one, the shown map when
        it is the target's and nothing runs."""
        self.session = session
        shown = view or (None if self.running else self._matching_view(session))
        scores, note = (self.scores, self.scores_note) if shown is not None and shown is self.view else (None, "")
        self.query_one("#cam-info", Static).update(
            camtext.info_text(session, shown, self.what if self.running else "", scores, note, self.size.width)
        )
        self.set_class(self.view is not None and shown is None and not self.running, "stale")  # hides the map
        self.query_one(CurvesPlot).show(scores, note)

    def _matching_view(self, session: Session) -> CamView | None:
        """The shown map, if it is the one the session's choices ask for: a map never sits
        under lines that name another layer, method, class or photo."""
        view = self.view
        if view is None or session.target is None:
            return None
        layer = session.node(session.target).name
        return view if view.answers(layer, session.method, session.class_index, session.image) else None

    def outdated(self, session: Session) -> bool:
        """The shown map is the target's, but ``m`` or ``c`` has chosen another method or class
        since: the screen redraws it (as ``o`` does for a new photo)."""
        view = self.view
        if view is None or session.target is None or self.running:
            return False
        layer = session.node(session.target).name
        return view.result.layer == layer and view.photo == session.image and self._matching_view(session) is None

    def place(self) -> None:
        """The top-5 where ``camlayout`` finds the largest map, then the map in the room it leaves
        (again when that room changes: the layout depends only on the room, so it settles)."""
        top5, side = self.query_one("#cam-top5", Static), self.query_one("#cam-side", Static)
        if self.view is None:
            self.query_one("#cam-preview", Static).update("")
            top5.update("")
            side.display, top5.display = False, True
            self.placed = None
            return
        room = self.query_one("#cam-body").size.height + (top5.size.height if top5.display else 0)
        self.placed = layout = camlayout.choose(self.view, self.size.width, room)
        beside = layout.where == "side"
        side.display, top5.display = beside, not beside
        side.styles.width = layout.columns
        (side if beside else top5).update(layout.top5)
        self.draw_map()  # and again when the top-5's new size resizes the preview

    def draw_map(self) -> None:
        preview = self.query_one("#cam-preview", Static)
        if self.view is None:
            return
        if self.pixels:
            self.query_one("#cam-pixels").image = self.view.overlay()
            return
        cells = camlayout.map_cells(preview.size.width, preview.size.height, tuple(self.view.heat.shape))
        if cells == (0, 0):
            return
        ascii_only = bool(os.environ.get("NO_COLOR"))  # no colour: the ASCII ramp draws the map itself
        preview.update(self.view.preview(*cells, ascii_only=ascii_only))

    def toggle_curves(self) -> bool:
        """``p``: the deletion and insertion curves in the map's place, or the map again; says
        whether the curves are shown now."""
        self.curves = not self.curves
        self.query_one("#cam-preview").display = not (self.pixels or self.curves)
        if self.pixels:
            self.query_one("#cam-pixels").display = not self.curves
        self.query_one(CurvesPlot).display = self.curves
        return self.curves

    def on_resize(self) -> None:
        if self.session is not None:
            self.describe(self.session)  # the scores' labels follow the width
        self.call_after_refresh(self.place)

    # --- running ---------------------------------------------------------------------

    def refuse_while_running(self) -> bool:
        """True (and say so) while a map is computing: one run at a time, and escape stops it."""
        if not self.running:
            return False
        if self._cancel.is_set():
            self.notify("still stopping the last map — a moment", severity="warning", timeout=3)
        else:
            self.notify("already computing — esc cancels", severity="warning", timeout=3)
        return True

    def start(self, session: Session, what: str) -> threading.Event:
        """A map or a ranking starts (``what`` it is, for the info line); returns the event that
        stops it. One run at a time: a map still being scored stops scoring (its scores are dropped)."""
        self._cancel.set()
        self.session, self.what = session, what
        self._cancel = threading.Event()
        self.running, self.scoring = True, False
        self.describe(session)
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.add_class("running")
        return self._cancel

    def cancel(self) -> str | None:
        """Ask a running computation to stop (between batches); says what is stopping, if anything."""
        if not (self.running or self.scoring):
            return None
        self._cancel.set()
        return self.what if self.running else "scoring the map"

    def failed(self) -> None:
        """The map, its scoring or a ranking failed (the screen notifies): ready for the next ``g``."""
        self._finish()
        self.scoring = False
        if self.session is not None:
            self.describe(self.session)

    def ranked(self, explainer: PhotoExplainer) -> None:
        """A ranking has finished: its explainer (the family's pass) serves the next ``g``."""
        self._finish()
        self.explainer = explainer
        if self.session is not None:
            self.describe(self.session, self.view)

    def _finish(self) -> None:
        self.running = False
        self.query_one(ProgressBar).remove_class("running")

    def on_cam_progress(self, message: CamProgress) -> None:
        self.query_one(ProgressBar).update(total=message.total, progress=message.done)

    def on_cam_done(self, message: CamDone) -> None:
        cancelled = self._cancel.is_set()  # escape came while a one-pass method could not stop
        self._finish()
        self.explainer = message.explainer  # sound either way: the next g on a hooked layer reuses it
        if cancelled:
            if self.session is not None:
                self.describe(self.session)
            self.notify("the map was not drawn", title="Grad-CAM cancelled", severity="warning")
            return
        self.view = message.view
        self.scores, self.scores_note, self.scoring = None, "scoring the map… esc skips", True
        if self.session is not None:
            self.describe(self.session, self.view)
        self.place()

    def on_score_progress(self, message: ScoreProgress) -> None:
        if message.view is self.view and self.scoring:
            self.scores_note = camtext.scoring_note(message.done, message.total)
            if self.session is not None:
                self.describe(self.session, self.view)

    def on_cam_scored(self, message: CamScored) -> None:
        if message.view is not self.view:
            return  # a map replaced since
        self.scoring = False
        self.scores, self.scores_note = message.scores, message.note
        if self.session is not None:
            self.describe(self.session, self.view)

    # --- what the next map needs -----------------------------------------------------

    def hooked(self, session: Session) -> bool:
        """After ``t``: a map is shown and the new target was hooked by its pass, so ``g`` would
        redraw it without a forward pass (the screen does so at once)."""
        if self.view is None or self.explainer is None or session.target is None or self.running:
            return False
        return session.node(session.target).name in self.explainer.hooked

    def forget(self) -> None:
        """The photo changed: the next map needs a new forward pass."""
        self.explainer = None

    def reset(self) -> None:
        """Another model: nothing computed for the last one applies."""
        self.view = self.explainer = self.scores = None
        self.scores_note = ""
        self.scoring = False
        self.place()
