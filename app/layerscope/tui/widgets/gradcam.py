"""The Grad-CAM tab: the heatmap over the photo, with its method, class, score, layer and top-5.

The map is computed in a worker (``g``); Score-CAM and Ablation-CAM report
progress to a bar and stop on escape. The engine's ``CamSession`` is kept, so
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

from layerscope.tui.messages import CamDone, CamProgress, ImageChecked
from layerscope.tui.threads import in_thread

if TYPE_CHECKING:
    from layerscope.tui.camlink import CamCache, CamRequest, CamView
    from layerscope.tui.failures import Failure
    from layerscope.tui.session import Session


def info_text(session: Session, view: CamView | None, running: bool = False) -> Text:
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
        text.append("\ncomputing the map… esc cancels" if running else "\npress g to compute the map", "italic dim")
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
    return text


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
        self.running = False

    def compose(self):
        yield Static(Text("", style="dim"), id="cam-info")
        yield ProgressBar(id="cam-progress", show_eta=False)
        yield MapPreview("", id="cam-preview")
        yield Static("", id="cam-top5")

    # --- showing ---------------------------------------------------------------------

    def describe(self, session: Session, view: CamView | None) -> None:
        self.session = session
        shown = view or (None if self.running else self._matching_view(session))
        self.query_one("#cam-info", Static).update(info_text(session, shown, self.running))

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

        self.session = session
        request = CamRequest.of(session)
        self._cancel = threading.Event()
        self.running = True
        self.describe(session, None)
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.add_class("running")
        self.app.run_worker(self._run_cam(session, request, self.cache, self._cancel), group="cam",
                            description="computing the map", exit_on_error=False)
        return True

    async def _run_cam(self, session: Session, request: CamRequest, cache: CamCache | None,
                       cancel: threading.Event) -> None:
        from layerscope.tui import camlink

        def progress(done: int, total: int) -> None:
            self.post_message(CamProgress(done, total))

        view, cache = await in_thread(camlink.compute, session, request, cache, progress=progress, cancel=cancel)
        self.post_message(CamDone(view, cache))

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
        if self.session is not None:
            self.describe(self.session, self.view)
        self._draw()

    def failed(self, failure: Failure) -> None:
        """The map was not made (the app notifies): ready for the next ``g``."""
        self._finish()
        if self.session is not None:
            self.describe(self.session, None)

    def _finish(self) -> None:
        self.running = False
        self.query_one(ProgressBar).remove_class("running")

    def cancel(self) -> bool:
        """Ask a running computation to stop (Score-CAM and Ablation-CAM stop between batches)."""
        if not self.running:
            return False
        self._cancel.set()
        return True

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
        self.view = self.cache = None
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
