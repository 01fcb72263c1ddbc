"""``d``: compare the model's weights file with another checkpoint; the tree shows what changed.

``DiffScreen`` sits between ``ModelScreen`` (the model's other workers) and ``MainScreen``
(the keys): the prompt, the worker, its progress line and what it brings back. The
engine (``layerscope.diff``) does the work on the tree the app shows, so the tree's
change column reads the very figures ``layerscope diff`` prints for the same pair.
"""

from __future__ import annotations

import time
from pathlib import Path

from textual import work
from textual.worker import Worker, WorkerState, get_current_worker

from layerscope.tui import difftext
from layerscope.tui.lazy import jobs
from layerscope.tui.messages import DiffProgress, DiffReady, ModelReady
from layerscope.tui.screens.image_path import CheckpointPathScreen
from layerscope.tui.screens.model import ModelScreen
from layerscope.tui.session import Session
from layerscope.tui.threads import in_thread
from layerscope.tui.widgets.diffstatus import DiffStatus
from layerscope.tui.widgets.module_tree import ModuleTreeView

PROGRESS_EVERY = 0.1  # seconds between two progress lines (a 100,000-tensor model would flood the screen)


class DiffScreen(ModelScreen):
    """The diff of the model on screen against another checkpoint, started by ``d`` or ``--diff``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pending_diff = self.options.diff  # ``--diff B``: compared once the first model has loaded
        self.other = ""  # the checkpoint being compared (for the progress line)
        self.diff_worker: Worker | None = None

    def action_diff(self) -> None:
        """``d``: ask for the other checkpoint; a model without a weights file says what ``d`` needs."""
        if self.session is None:
            return
        base = self.session.loaded.diff_base()
        if base is None:
            self.notify(difftext.no_weights_file(self.session.loaded), title="Nothing to compare",
                        severity="warning", markup=False, timeout=8)
            return
        label = base if isinstance(base, str) else f"{self.session.tree.model_class} (in memory)"
        self.app.push_screen(CheckpointPathScreen(label), self._diff_chosen)

    def _diff_chosen(self, path: Path | None) -> None:
        if path is not None and self.session is not None:
            self.start_diff(self.session, str(path))

    def start_diff(self, session: Session, other: str) -> None:
        """Compare in a worker (a new ``d`` replaces a running one); escape stops it."""
        self.other = other
        self.query_one(DiffStatus).running(other)
        self.diff_worker = self.compute_diff(session, other)

    def stop_diff(self) -> bool:
        """Escape: stop a running diff (the tree keeps what it showed); True if one was running."""
        worker = self.diff_worker
        if worker is None or worker.state not in (WorkerState.PENDING, WorkerState.RUNNING):
            return False
        worker.cancel()
        self.query_one(DiffStatus).idle()
        return True

    @work(exclusive=True, exit_on_error=False, group="diff", description="comparing checkpoints")
    async def compute_diff(self, session: Session, other: str) -> None:
        """The engine in a thread: it asks ``worker.is_cancelled`` between two tensors, so escape
        stops the thread too, not just the wait for it."""
        worker = get_current_worker()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done == total or now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                self.post_message(DiffProgress(done, total))

        try:
            result = await in_thread(jobs.diff_weights, session, other, trust=self.options.trust,
                                     progress=progress, cancel=lambda: worker.is_cancelled)
        finally:
            for status in self.query(DiffStatus):  # none once the app has closed the screen
                status.idle()
        if session is self.session:
            self.post_message(DiffReady(session, result))

    def on_diff_progress(self, message: DiffProgress) -> None:
        if self.diff_worker is not None and self.diff_worker.state == WorkerState.RUNNING:
            self.query_one(DiffStatus).running(self.other, message.done, message.total)

    def on_diff_ready(self, message: DiffReady) -> None:
        """The tree switches to the change column; the Stats tab lists the node's tensors."""
        session = self.session
        if session is not message.session:
            return
        session.diff = message.result
        self.query_one(ModuleTreeView).show_diff(message.result)
        self.forget_tab("stats")
        self.refresh_tabs()
        self.notify(difftext.summary(message.result), title=f"Diff against {Path(message.result.b).name}",
                    markup=False, timeout=8)

    def on_model_ready(self, message: ModelReady) -> None:
        """Runs before ``ModelScreen.on_model_ready`` (Textual calls the handlers of the whole
        MRO, subclass first): a new model drops the last one's diff; the first model starts
        ``--diff``."""
        self.query_one(ModuleTreeView).diff = None
        if self.pending_diff:
            other, self.pending_diff = self.pending_diff, None
            self.start_diff(message.session, other)
