"""``d``: compare the model's weights with another checkpoint. The line under the tree while it
runs (hidden otherwise), and the diff's own prompt and worker.

The widget owns the work (the prompt, the worker, its progress) and speaks to the screen
through ``DiffReady`` (the screen shows the result in the tree and the tabs) and
``WorkFailed``. The engine (``layerscope.diff``) does the work on the tree the app shows, so
the tree's change column reads the very figures ``layerscope diff`` prints for the same pair.
"""

from __future__ import annotations

import time

from textual import work
from textual.widgets import Static
from textual.worker import Worker, WorkerState, get_current_worker

from layerscope.tui import difftext
from layerscope.tui.lazy import jobs
from layerscope.tui.messages import DiffProgress, DiffReady, WorkFailed
from layerscope.tui.screens.image_path import CheckpointPathScreen
from layerscope.tui.session import Session
from layerscope.tui.threads import in_thread

PROGRESS_EVERY = 0.1  # seconds between two progress lines (a 100,000-tensor model would flood the screen)


class DiffStatus(Static):
    """How far the diff has come (escape stops it); ``--diff B`` waits here for the first model."""

    def __init__(self, *, pending: str | None = None, trust: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pending = pending  # ``--diff B``: compared once the first model has loaded
        self.trust = trust
        self.other = ""  # the checkpoint being compared (for the progress line)
        self.worker: Worker | None = None

    def running(self, other: str, done: int = 0, total: int = 0) -> None:
        self.update(difftext.progress_text(other, done, total))
        self.add_class("running")

    def idle(self) -> None:
        self.remove_class("running")

    def ask(self, session: Session) -> None:
        """``d``: ask for the other checkpoint; a model without a weights file says what ``d`` needs."""
        base = session.loaded.diff_base()
        if base is None:
            self.notify(
                difftext.no_weights_file(session.loaded),
                title="Nothing to compare",
                severity="warning",
                markup=False,
                timeout=8,
            )
            return
        label = base if isinstance(base, str) else f"{session.tree.model_class} (in memory)"
        self.app.push_screen(
            CheckpointPathScreen(label), lambda path: self.start(session, str(path)) if path is not None else None
        )

    def model_changed(self, session: Session) -> None:
        """A new model: ``--diff`` starts on the first one."""
        if self.pending:
            other, self.pending = self.pending, None
            self.start(session, other)

    def start(self, session: Session, other: str) -> None:
        """Compare in a worker (a new ``d`` replaces a running one); escape stops it."""
        self.other = other
        self.running(other)
        self.worker = self.compute(session, other)

    def stop(self, *, say: bool = False) -> bool:
        """Escape (``say``: and a line saying so): stop a running diff, the tree keeping what it
        showed; True if one was running."""
        worker = self.worker
        if worker is None or worker.state not in (WorkerState.PENDING, WorkerState.RUNNING):
            return False
        worker.cancel()
        self.idle()
        if say:
            self.notify("the tree keeps what it showed", title="Diff stopped", severity="warning", timeout=3)
        return True

    @work(exclusive=True, exit_on_error=False, group="diff", description="comparing checkpoints")
    async def compute(self, session: Session, other: str) -> None:
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
            result = await in_thread(
                jobs.diff_weights,
                session,
                other,
                trust=self.trust,
                progress=progress,
                cancel=lambda: worker.is_cancelled,
            )
        finally:
            self.idle()
        self.post_message(DiffReady(session, result))  # bubbles to the screen, which shows it

    def on_diff_progress(self, message: DiffProgress) -> None:
        message.stop()
        if self.worker is not None and self.worker.state == WorkerState.RUNNING:
            self.running(self.other, message.done, message.total)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.post_message(WorkFailed(event.worker))
