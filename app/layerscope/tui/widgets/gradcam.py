"""The Grad-CAM tab: the heatmap over the photo, with its method, class, score, layer and top-5.

The map is computed in a worker (``g``); Score-CAM and Ablation-CAM report
progress to a bar and stop on escape. The engine's ``CamPass`` is kept, so
moving the target among the layers it hooked redraws without a new forward pass.
The workers belong to the app, whose ``on_worker_state_changed`` reports their
errors and calls ``failed`` here.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static

from layerscope.tui.messages import CamDone, CamProgress, CamScored, ImageChecked, RankDone, ScoreProgress
from layerscope.tui.threads import in_thread

if TYPE_CHECKING:
    from layerscope.tui.camlink import CamCache, CamRequest, CamView
    from layerscope.tui.failures import Failure
    from layerscope.tui.session import Session


COMPACT_WIDTH = 60  # narrower than this, the scores line uses short labels to keep to one row


def info_text(
    session: Session, view: CamView | None, running: str = "", scores: object = None, compact: bool = False
) -> Text:
    """What the tab says above the picture; ``running`` names the work under way ("the map");
    ``compact`` (a narrow tab) shortens the scores' labels so they keep to one row."""
    node = session.node(session.target) if session.target is not None else None
    target = (node.access_negative or node.access) if node is not None else "none yet: t or a"
    text = Text()
    text.append("layer ", "dim")
    text.append(target, "bold")
    text.append("  method ", "dim")
    text.append(session.method, "bold")
    text.append("\nclass ", "dim")
    text.append(session.class_name(session.class_index), "bold")
    if session.class_index is not None:
        text.append(" pinned (C unpins)" if session.class_pinned else " for this image (C pins)", "dim")
    text.append("  image ", "dim")
    text.append(session.image.name)
    if not session.loaded.pretrained:
        text.append("\n⚠ random weights: this map shows nothing learned", "bold dark_orange")
    if view is None:
        idle = "\npress g to compute the map · r ranks layers"
        text.append(f"\ncomputing {running}… esc cancels" if running else idle, "italic dim")
        return text
    result = view.result
    text.append("\nmap ", "dim")
    text.append(f"{result.method} at {result.layer}", "bold cyan")
    name = f" {result.target_name}" if result.target_name else ""
    if result.target is None:
        text.append(" for no class (class-blind)", "italic")
    else:
        text.append(f" for {result.target}{name}", "bold")
    score = next((p.probability for p in view.top5 if p.index == result.target), None)
    if score is not None:
        text.append(f" p={score:.3f}")
    if view.reused:
        text.append("  (redrawn from cache)", "dim")
    if result.all_zero:
        text.append("\nthe map is all zero: nothing here raises the score (random weights?)", "dark_orange")
    _append_evidence(text, session, result, scores, compact)
    return text


def _append_evidence(text: Text, session: Session, result, scores: object, compact: bool) -> None:
    """The map's deletion/insertion scores (or where they stand), its place in the last ranking,
    and a warning when the method cannot tell one class from another."""
    from layerscope.tui import camlink

    text.append("\n")
    if scores is None:
        text.append("scores: —", "dim")
    elif isinstance(scores, str):
        text.append(scores, "italic dim")
    else:
        labels = ("del ", "↓ ins ", "↑ drop ") if compact else ("deletion ", " ↓  insertion ", " ↑  avg drop ")
        for label, value in zip(labels, (scores.deletion_auc, scores.insertion_auc, scores.average_drop)):
            text.append(label, "dim")
            text.append(f"{value:.3f}", "bold")
    ranking = session.ranking
    place = next((i for i, s in enumerate(ranking.layers, 1) if s.layer == result.layer), None) if ranking else None
    if place is not None and ranking.method == result.method:
        text.append(f"  rank #{place} of {len(ranking.layers)}", "bold green" if place == 1 else "bold")
    if camlink.class_blind(result.method):
        text.append(f"\nclass-blind: {result.method} draws the same map for every class", "bold dark_orange")


def top5_table(view: CamView) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", justify="right")
    table.add_column(no_wrap=True, overflow="ellipsis")
    table.add_column(justify="right", style="bold")
    for p in view.top5:
        style = "bold magenta" if p.index == view.result.target else ""
        table.add_row(str(p.index), Text(p.name or "-", style=style), f"{p.probability:.3f}")
    return table


def detections_table(view: CamView) -> Table:
    """A detector's best boxes with their scores; ◎ marks the box the map explains (boxed)."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", justify="right")
    table.add_column(no_wrap=True, overflow="ellipsis")
    table.add_column(justify="right", style="bold")
    table.add_column(style="dim", no_wrap=True)
    for d in view.detections:
        target = view.box is not None and d.box == view.box
        table.add_row(f"#{d.rank}", Text(d.title, style="bold magenta" if target else ""), f"{d.score:.3f}",
                      "◎ boxed" if target else "")
    return table


def top5_line(view: CamView) -> Text:
    """The top-5 as wrapped text, for short terminals: two or three rows instead of five,
    which the map gets instead."""
    text = Text("top-5 ", style="dim")
    for i, p in enumerate(view.top5):
        if i:
            text.append(" · ", "dim")
        text.append(f"{p.index} {p.name or '-'}", "bold magenta" if p.index == view.result.target else "")
        text.append(f" {p.probability:.3f}", "bold")
    return text


SHORT_PANEL = 24  # rows: below this the top-5 is one wrapped line (80×24 gives the panel 19)


def pixel_widget(protocol: str):
    """textual-image's widget for ``protocol`` ("kitty" or "sixel", as ``layerscope.pixels`` found)."""
    from textual_image.widget import SixelImage, TGPImage

    widget = (SixelImage if protocol == "sixel" else TGPImage)(id="cam-pixels")
    widget.styles.width = "auto"
    widget.styles.height = "1fr"
    return widget


class MapPreview(Static):
    """The map's cells, redrawn for whatever room it has: the top-5 and the info around it
    change height after the map is drawn (a table on tall screens, two rows on short ones)."""

    def on_resize(self) -> None:
        self.query_ancestor(CamPanel).draw_map()


class CamPanel(Vertical):
    """Shows one ``CamView``; owns the CAM worker and the engine cache."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view: CamView | None = None
        self.cache: CamCache | None = None
        self.session: Session | None = None
        self._cancel = threading.Event()
        self.running = False  # a map or a ranking is being computed: one at a time
        self.scores: object = None  # the shown map's Faithfulness, or a line saying where they stand
        self.scoring = False  # the map's worker is still scoring it; a new g or r stops that
        self._what = "the map"  # what escape stops while running

    def compose(self):
        yield Static(Text("", style="dim"), id="cam-info")
        yield ProgressBar(id="cam-progress", show_eta=False)
        pixels = getattr(self.app, "pixels", None)  # the terminal draws pixels: the overlay at full resolution
        preview = MapPreview("", id="cam-preview")
        preview.display = not pixels
        yield preview
        if pixels:
            yield pixel_widget(pixels)
        yield Static("", id="cam-top5")

    # --- showing ---------------------------------------------------------------------

    def describe(self, session: Session, view: CamView | None) -> None:
        self.session = session
        shown = view or (None if self.running else self._matching_view(session))
        scores = self.scores if shown is not None and shown is self.view else None
        compact = 0 < self.size.width < COMPACT_WIDTH
        self.query_one("#cam-info", Static).update(
            info_text(session, shown, self._what if self.running else "", scores, compact))

    def _matching_view(self, session: Session) -> CamView | None:
        view = self.view
        if view is None or session.target is None:
            return None
        return view if view.result.layer == session.node(session.target).name else None

    def _draw(self) -> None:
        """The top-5 first, then the map in whatever room it leaves."""
        top5 = self.query_one("#cam-top5", Static)
        if self.view is None:
            self.query_one("#cam-preview", Static).update("")
            top5.update("")
            return
        if self.view.detections:
            top5.update(detections_table(self.view))
        else:
            top5.update(top5_line(self.view) if self.size.height < SHORT_PANEL else top5_table(self.view))
        self.draw_map()  # and again when the top-5's new height resizes the preview

    def draw_map(self) -> None:
        preview = self.query_one("#cam-preview", Static)
        if self.view is None:
            return
        if getattr(self.app, "pixels", None):
            from layerscope.tui.camlink import overlay_picture

            self.query_one("#cam-pixels").image = overlay_picture(self.view)
            return
        from layerscope.render import heatmap_preview

        width, height = preview.size.width, preview.size.height
        if width < 4 or height < 2:
            return
        heat = self.view.heat
        h, w = heat.shape
        cells_w = min(width, int(height * 2 * w / h))
        cells_h = max(1, min(height, round(cells_w * h / w / 2)))
        ascii_only = bool(os.environ.get("NO_COLOR"))  # no colour: the ASCII ramp draws the map itself
        preview.update(heatmap_preview(heat, max(4, cells_w), cells_h, image=None if ascii_only else self.view.image,
                                       ascii=True if ascii_only else None, mask=self.view.mask, box=self.view.box))

    def on_resize(self) -> None:
        if self.session is not None:
            self.describe(self.session, None)  # the scores' labels follow the width
        self.call_after_refresh(self._draw)

    # --- computing -------------------------------------------------------------------

    def refuse_while_running(self) -> bool:
        """True (and say so) while a map is computing: one run at a time, and escape stops it."""
        if not self.running:
            return False
        if self._cancel.is_set():
            self.app.notify("still stopping the last map — a moment", severity="warning", timeout=3)
        else:
            self.app.notify("already computing — esc cancels", severity="warning", timeout=3)
        return True

    def compute(self, session: Session) -> bool:
        """Start the map for the session's current choices; refused (False) while one runs.

        The worker gets a frozen ``CamRequest`` taken here, on the UI thread."""
        if self.refuse_while_running():
            return False
        from layerscope.tui.camlink import CamRequest

        self._start(session, "the map")
        self.app.run_worker(self._run_cam(session, CamRequest.of(session), self.cache, self._cancel), group="cam",
                            description="computing the map", exit_on_error=False)
        return True

    def rank(self, session: Session, index: int) -> bool:
        """Rank the family of node ``index`` (``r``); refused (False) while a map or ranking runs."""
        if self.refuse_while_running():
            return False
        from layerscope.tui.camlink import CamRequest

        self._start(session, "the ranking of its family")
        request = CamRequest(index, session.method, session.class_index, session.image, session.eligibility)
        self.app.run_worker(self._run_rank(session, request, self.cache, self._cancel), group="cam",
                            description="ranking layers", exit_on_error=False)
        return True

    def _start(self, session: Session, what: str) -> None:
        """One run at a time: a map still being scored stops scoring (its scores are dropped)."""
        self._cancel.set()
        self.session, self._what = session, what
        self._cancel = threading.Event()
        self.running, self.scoring = True, False
        self.describe(session, None)
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.add_class("running")

    async def _run_cam(self, session: Session, request: CamRequest, cache: CamCache | None,
                       cancel: threading.Event) -> None:
        from layerscope.tui import camlink

        view, cache = await in_thread(camlink.compute, session, request, cache, progress=self._progress, cancel=cancel)
        self.post_message(CamDone(view, cache))
        if not cancel.is_set():
            await self._score(view, cache, request.class_index, cancel)

    async def _score(self, view: CamView, cache: CamCache, class_index: int | None, cancel: threading.Event) -> None:
        """Still in the map's worker: the map's deletion/insertion scores, cancellable (escape,
        or the next g / r). A model they do not fit (no class scores) says so in the tab."""
        from layerscope.cam import CamCancelled
        from layerscope.errors import LayerscopeError, first_line
        from layerscope.tui import camlink

        def progress(done: int, total: int) -> None:
            self.post_message(ScoreProgress(view, done, total))

        try:
            scores = await in_thread(camlink.score, view, cache, class_index, progress=progress, cancel=cancel)
        except CamCancelled:
            self.post_message(CamScored(view, note="scores: skipped"))
        except LayerscopeError as exc:
            self.post_message(CamScored(view, note=f"scores: none ({first_line(exc)})"))
        else:
            self.post_message(CamScored(view, scores))

    async def _run_rank(self, session: Session, request: CamRequest, cache: CamCache | None,
                        cancel: threading.Event) -> None:
        from layerscope.tui import camlink

        ranking, cache = await in_thread(camlink.rank, session, request, cache, progress=self._progress, cancel=cancel)
        self.post_message(RankDone(ranking, cache))

    def _progress(self, done: int, total: int) -> None:
        """Called from the worker thread; post_message is thread-safe."""
        self.post_message(CamProgress(done, total))

    def on_rank_done(self, message: RankDone) -> None:
        """The app marks the tree (the message bubbles on to it); here the run ends."""
        self._finish()
        self.cache = message.cache
        if self.session is not None:
            self.describe(self.session, self.view)

    def on_score_progress(self, message: ScoreProgress) -> None:
        if message.view is self.view and self.scoring:
            self.scores = f"scoring the map: {message.done}/{message.total} perturbed passes · esc skips"
            if self.session is not None:
                self.describe(self.session, self.view)

    def on_cam_scored(self, message: CamScored) -> None:
        if message.view is not self.view:
            return  # a map replaced since
        self.scoring = False
        self.scores = message.scores if message.scores is not None else message.note
        if self.session is not None:
            self.describe(self.session, self.view)

    def on_cam_progress(self, message: CamProgress) -> None:
        self.query_one(ProgressBar).update(total=message.total, progress=message.done)

    def on_cam_done(self, message: CamDone) -> None:
        cancelled = self._cancel.is_set()  # escape came while a one-pass method could not stop
        self._finish()
        self.cache = message.cache  # sound either way: the next g on a hooked layer reuses it
        if cancelled:
            if self.session is not None:
                self.describe(self.session, None)
            self.app.notify("the map was not drawn", title="Grad-CAM cancelled", severity="warning")
            return
        self.view = message.view
        self.scores, self.scoring = "scoring the map… esc skips", True
        if self.session is not None:
            self.describe(self.session, self.view)
        self._draw()

    def failed(self, failure: Failure) -> None:
        """The map, its scoring or a ranking failed (the app notifies): ready for the next ``g``."""
        self._finish()
        self.scoring = False
        if self.session is not None:
            self.describe(self.session, None)

    def _finish(self) -> None:
        self.running = False
        self.query_one(ProgressBar).remove_class("running")

    def cancel(self) -> str | None:
        """Ask a running computation to stop (between batches); says what is stopping, if anything."""
        if not (self.running or self.scoring):
            return None
        self._cancel.set()
        return self._what if self.running else "scoring the map"

    def redraw_from_cache(self, session: Session) -> None:
        """After ``t``: when a map is shown and the new target was hooked, redraw without a forward."""
        if self.view is None or self.cache is None or session.target is None or self.running:
            return
        if session.node(session.target).name in self.cache.hooked:
            self.compute(session)

    def forget(self) -> None:
        """The photo or class changed: the next map needs a new forward pass."""
        self.cache = None

    def reset(self) -> None:
        """Another model: nothing computed for the last one applies."""
        self.view = self.cache = self.scores = None
        self.scoring = False
        self._draw()

    # --- the photo -------------------------------------------------------------------

    def open_image(self, path: Path) -> None:
        """Read the photo in a worker (a FIFO or a decompression bomb must not stall the app);
        ``on_image_checked`` takes it once it reads."""
        self.app.run_worker(self._check_image(path), group="image", description="reading the image",
                            exclusive=True, exit_on_error=False)

    async def _check_image(self, path: Path) -> None:
        from layerscope.tui import camlink

        await in_thread(camlink.check_image, path)
        self.post_message(ImageChecked(path))

    def on_image_checked(self, message: ImageChecked) -> None:
        session = self.session
        if session is None:
            return
        if self.refuse_while_running():  # a map started while the path was being read
            return
        reset = session.change_image(message.path)
        self.forget()
        self.app.query_one("TabbedContent").active = "gradcam"
        back = "\nclass: back to the top prediction (C pins a class)" if reset else ""
        self.app.notify(f"{message.path}{back}", title="Image", markup=False, timeout=3)
        if self.view is not None and session.target is not None:
            self.compute(session)
        else:
            self.describe(session, None)

    # --- saving ----------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        if self.view is None or self.session is None:
            self.app.notify("nothing to save yet: press g to compute a map first", severity="warning")
            return
        from layerscope.errors import LayerscopeError, first_line
        from layerscope.savenames import map_stem, unused_stem
        from layerscope.tui import camlink

        result = self.view.result
        stem = unused_stem(folder, map_stem(spec=self.session.loaded.spec, layer=result.layer, method=result.method,
                                            image=self.session.image, target=result.target,
                                            target_name=result.target_name))
        try:
            png, npy = camlink.save(self.view, stem.parent, stem.name)
        except (LayerscopeError, OSError) as exc:
            self.app.notify(first_line(exc), title="Not saved", severity="error", markup=False)
            return
        self.app.notify(f"{png}\n{npy}", title="Saved", markup=False, timeout=8)
