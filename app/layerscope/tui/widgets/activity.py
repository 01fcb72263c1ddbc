"""``A``: what flows through each node, collected over the photo (or ``--input``) in a worker.

``ActivityCollector`` owns the work (the worker, whether it runs, stopping it) and speaks
to the screen through ``ActivityReady`` (the screen shows the figures in the tree's
activity column and the Stats tab) and ``WorkFailed``. It draws nothing. The engine
(``layerscope.activations``) does the work, so the figures are the ones ``layerscope
activations`` prints for the same model and input.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import work
from textual.widget import Widget
from textual.worker import Worker, WorkerState, get_current_worker

from layerscope.tui.lazy import jobs
from layerscope.tui.messages import ActivityReady, WorkFailed
from layerscope.tui.session import Session
from layerscope.tui.threads import in_thread


class ActivityCollector(Widget):
    """Activation statistics of the model on screen, started by ``A``; escape stops them."""

    DEFAULT_CSS = "ActivityCollector { display: none; }"

    def __init__(self, probe_inputs: Sequence[str] = (), **kwargs) -> None:
        super().__init__(**kwargs)
        self.probe_inputs = tuple(probe_inputs)
        self.worker: Worker | None = None

    def start(self, session: Session) -> None:
        """Collect every node's activations (again, if the photo changed since), unless running."""
        if self.running():
            self.notify("still collecting activations… escape stops", severity="warning", timeout=3)
            return
        inputs = ", ".join(self.probe_inputs) or session.image.name
        self.worker = self.collect(session)
        self.notify(f"over {inputs}… escape stops", title="Collecting activations", markup=False, timeout=3)

    def running(self) -> bool:
        worker = self.worker
        return worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def stop(self, *, say: bool = False) -> bool:
        """Escape (``say``: and a line saying so): stop collecting (the model's hooks see it at
        the next module); True if it ran."""
        if not self.running():
            return False
        assert self.worker is not None
        self.worker.cancel()
        if say:
            self.notify(
                "no statistics kept; A starts again", title="Activations stopped", severity="warning", timeout=3
            )
        return True

    @work(exclusive=True, exit_on_error=False, group="activity", description="collecting activations")
    async def collect(self, session: Session) -> None:
        worker = get_current_worker()
        report = await in_thread(jobs.collect_activity, session, self.probe_inputs, cancel=lambda: worker.is_cancelled)
        self.post_message(ActivityReady(session, report))  # bubbles to the screen, which shows it

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.post_message(WorkFailed(event.worker))
