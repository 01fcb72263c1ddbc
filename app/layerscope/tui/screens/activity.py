"""``A``: what flows through each node, collected over the photo (or ``--input``) in a worker.

``ActivityScreen`` sits between ``DiffScreen`` and ``MainScreen`` (the keys): the worker,
what it brings back and when it goes stale. The engine (``layerscope.activations``)
does the work, so the tree's activity column and the Stats tab's figures are the
ones ``layerscope activations`` prints for the same model and input.
"""

from __future__ import annotations

from textual import work
from textual.worker import Worker, WorkerState, get_current_worker

from layerscope.tui import activitytext
from layerscope.tui.lazy import jobs
from layerscope.tui.messages import ActivityReady, ModelReady
from layerscope.tui.screens.diffmode import DiffScreen
from layerscope.tui.session import Session
from layerscope.tui.threads import in_thread
from layerscope.tui.treeline import COLUMNS, column_named
from layerscope.tui.widgets.module_tree import ModuleTreeView


class ActivityScreen(DiffScreen):
    """Activation statistics of the model on screen, started by ``A``; escape stops them."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.activity_worker: Worker | None = None

    def action_activity(self) -> None:
        """``A``: collect every node's activations (again, if the photo changed since)."""
        session = self.session
        if session is None:
            return
        if self.activity_running():
            self.notify("still collecting activations… escape stops", severity="warning", timeout=3)
            return
        inputs = ", ".join(self.options.probe_inputs) or session.image.name
        self.activity_worker = self.collect_activity(session)
        self.notify(f"over {inputs}… escape stops", title="Collecting activations", markup=False, timeout=3)

    def activity_running(self) -> bool:
        worker = self.activity_worker
        return worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def stop_activity(self) -> bool:
        """Escape: stop collecting (the model's hooks see it at the next module); True if it ran."""
        if not self.activity_running():
            return False
        assert self.activity_worker is not None
        self.activity_worker.cancel()
        return True

    @work(exclusive=True, exit_on_error=False, group="activity", description="collecting activations")
    async def collect_activity(self, session: Session) -> None:
        worker = get_current_worker()
        report = await in_thread(jobs.collect_activity, session, self.options.probe_inputs,
                                 cancel=lambda: worker.is_cancelled)
        if session is self.session:
            self.post_message(ActivityReady(session, report))

    def on_activity_ready(self, message: ActivityReady) -> None:
        """The tree switches to the activity column; the Stats tab shows the node's histogram."""
        session = self.session
        if session is not message.session:
            return
        session.activity = message.report
        tree = self.query_one(ModuleTreeView)
        tree.activity = message.report
        tree.column = column_named("activity")
        tree.relabel()
        self.forget_tab("stats")
        self.refresh_tabs()
        title, text = activitytext.summary(message.report)
        self.notify(text, title=title, markup=False, timeout=8)

    def photo_changed(self) -> None:
        """Statistics collected over the last photo describe it, not the new one: they go (``A``
        collects them again); those over ``--input`` tensors stay."""
        session = self.session
        if session is None or session.activity is None or self.options.probe_inputs:
            return
        session.activity = None
        self._drop_column().relabel()
        self.forget_tab("stats")

    def on_model_ready(self, message: ModelReady) -> None:
        """Runs before ``DiffScreen``'s and ``ModelScreen``'s: a new model drops the last one's
        statistics, and a collection still running for it."""
        self.stop_activity()
        self._drop_column()

    def _drop_column(self) -> ModuleTreeView:
        """The tree without activity figures (back to parameters if it showed them)."""
        tree = self.query_one(ModuleTreeView)
        tree.activity = None
        if tree.column.key == "activity":
            tree.column = COLUMNS[0]
        return tree
