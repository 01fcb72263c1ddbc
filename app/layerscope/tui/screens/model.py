"""The model on screen: its workers, what they bring back, and the tabs that follow the cursor.

``MainScreen`` (``screens.main``) adds the keys. The model's own workers run on this
screen; a feature owns its widget and its worker (``widgets.diffstatus``: ``d``'s diff,
``widgets.activity``: ``A``'s statistics, ``widgets.lens``: the Lens tab,
``widgets.attention``: the attention view) and speaks to the screen through messages, which
show its result in the tree and the tabs. Every failure reaches one handler,
``on_worker_state_changed`` (a feature's through ``WorkFailed``): it becomes a notification
while everything on screen stays as it was, and a bug's traceback goes to the log file. ``jobs`` and
``camlink`` import torch: ``lazy`` imports them when a worker or a key first needs
them, so the frame paints before torch loads.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import TabbedContent, TabPane, Tree
from textual.worker import Worker, WorkerState

from layerscope.errors import LayerscopeError, first_line
from layerscope.tui import activitytext, difftext, failures
from layerscope.tui.keys import FOOTER_KEEP
from layerscope.tui.lazy import camlink, jobs
from layerscope.tui.messages import (
    ActivityReady, CamDone, CamProgress, CamScored, CostReady, DiffReady, ImageChecked, ModelReady, RankDone,
    ScoreProgress, ShapesReady, TabReady, WorkFailed,
)
from layerscope.tui.session import AppOptions, Loader, Session
from layerscope.tui.tabs import SELF_FILLED, SLOW_TABS, TABS
from layerscope.tui.threads import in_thread
from layerscope.tui.treeline import COLUMNS, column_named
from layerscope.tui.widgets.activity import ActivityCollector
from layerscope.tui.widgets.api import ApiPanel
from layerscope.tui.widgets.diffstatus import DiffStatus
from layerscope.tui.widgets.footer import KeyFooter
from layerscope.tui.widgets.attention import AttentionView
from layerscope.tui.widgets.gradcam import CamPanel
from layerscope.tui.widgets.header import ModelHeader
from layerscope.tui.widgets.lens import LensPanel, lens_refusal
from layerscope.tui.widgets.module_tree import ModuleTreeView
from layerscope.tui.widgets.search import SearchBar
from layerscope.tui.widgets.state_dict import StateDictPanel
from layerscope.tui.widgets.stats import StatsPanel

if TYPE_CHECKING:
    from layerscope.activations import ActivationReport
    from layerscope.cam import PhotoExplainer
    from layerscope.tui.camlink import CamRequest, CamView

LENS_TAB = "lens"
TABS_PAUSE = 0.03  # seconds the cursor rests before the tabs describe its node
SYNC_LIMIT = 3000  # subtrees up to this many modules / state_dict entries fill their tab at once

# the notification title when a worker of this group fails
FAILED = {"load": "Model not loaded", "probe": "Shape probe failed", "panel": "Tab not filled",
          "cam": "Grad-CAM failed", "image": "Image not opened", "copy": "Not copied", "cost": "MACs not counted",
          "diff": "Diff failed", "activity": "Activations not collected"}


class ModelScreen(Screen):
    """A module tree on the left, tabs about the highlighted node on the right."""

    def __init__(self, options: AppOptions, log_path: Path) -> None:
        super().__init__()
        self.options = options
        self.log_path = log_path  # where a bug's traceback goes (the help screen says)
        self.spec = options.spec  # the model being loaded, or on screen
        self.session: Session | None = None
        self.current: int | None = None  # the node under the cursor
        self._shown: dict[str, int | None] = dict.fromkeys(TABS)  # the node each tab shows
        self._tabs_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield ModelHeader(id="header")
        with Horizontal(id="main"):
            yield ModuleTreeView(id="tree")
            with TabbedContent(id="tabs", initial="stats"):
                with TabPane("Stats", id="stats"):
                    yield StatsPanel(id="stats-panel")
                with TabPane("state_dict", id="state_dict"):
                    yield StateDictPanel(id="state-panel")
                with TabPane("API", id="api"):
                    yield ApiPanel(id="api-panel")
                with TabPane("Grad-CAM", id="gradcam"):
                    yield CamPanel(self.options.pixels, id="cam-panel")
                    yield AttentionView(id="attention-view")
                with TabPane("Lens", id=LENS_TAB):  # a causal language model's only
                    yield LensPanel(id="lens-panel")
        yield DiffStatus(pending=self.options.diff, trust=self.options.trust, id="diff-status")
        yield ActivityCollector(self.options.probe_inputs, id="activity")
        yield SearchBar(id="search")
        yield KeyFooter(FOOTER_KEEP)

    def on_mount(self) -> None:
        self.query_one(TabbedContent).hide_tab(LENS_TAB)
        tree = self.query_one(ModuleTreeView)
        tree.loading = True
        tree.focus()
        # 1-4 pick a tab: tab goes from the tree straight to the pane, where pgdn scrolls it
        self.query_one("#tabs Tabs").can_focus = False
        self.query_one(ModelHeader).loading(self.spec)
        self.load_model(self.options.load)

    # --- the model's workers ---------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="load", description="loading the model")
    async def load_model(self, load: Loader) -> None:
        image = self.session.image if self.session else self.options.image
        self.post_message(ModelReady(await in_thread(jobs.open_session, load, image)))

    @work(exclusive=True, exit_on_error=False, group="probe", description="probing shapes")
    async def probe_shapes(self, session: Session) -> None:
        """Shapes, eligibility judged as the engine judges it (the probe input's H×W and the
        model's hints), and the suggested target: all off the UI thread."""
        shapes, verdicts, suggested = await in_thread(jobs.probe_shapes, session, self.options.probe_inputs)
        if session is self.session:  # not a model that ``l`` has replaced meanwhile
            self.post_message(ShapesReady(session, shapes, verdicts, suggested))
            self.count_cost(session)

    @work(exclusive=True, exit_on_error=False, group="cost", description="counting MACs")
    async def count_cost(self, session: Session) -> None:
        """The counted pass runs after the plain one: counting every op costs several times a
        plain forward on a 100,000-module model, and marks and suggestions need only shapes."""
        cost = await in_thread(jobs.count_cost, session, self.options.probe_inputs)
        if session is self.session:
            self.post_message(CostReady(session, cost))

    @work(exclusive=True, exit_on_error=False, group="panel", description="filling the tab")
    async def fill_slow_tab(self, tab: str, index: int) -> None:
        session = self.session
        content = await in_thread(jobs.tab_content, session, tab, index)
        if session is self.session:
            self.post_message(TabReady(index, content))

    # --- the Grad-CAM workers: the map, its scores, a ranking, a photo ---------------

    @work(exit_on_error=False, group="cam", description="computing the map")
    async def compute_map(self, session: Session, request: CamRequest, explainer: PhotoExplainer | None,
                          cancel: threading.Event) -> None:
        """The map, then (still in this worker, cancellable by escape or the next g / r) its
        deletion/insertion scores; the panel takes each result."""
        panel = self.query_one(CamPanel)
        view, explainer = await in_thread(camlink.compute, session, request, explainer, cancel=cancel,
                                          progress=lambda done, total: panel.post_message(CamProgress(done, total)))
        panel.post_message(CamDone(view, explainer))
        if not cancel.is_set():
            panel.post_message(await self._scored(view, explainer, request.class_index, cancel))

    async def _scored(self, view: CamView, explainer: PhotoExplainer, class_index: int | None,
                      cancel: threading.Event) -> CamScored:
        """The map's scores; a model they do not fit (no class scores) says so in the tab."""
        panel = self.query_one(CamPanel)
        try:
            scores = await in_thread(camlink.score, view, explainer, class_index, cancel=cancel,
                                     progress=lambda done, total: panel.post_message(ScoreProgress(view, done, total)))
        except camlink.CamCancelled:
            return CamScored(view, note="scores: skipped")
        except LayerscopeError as exc:
            return CamScored(view, note=f"scores: none ({first_line(exc)})")
        return CamScored(view, scores)

    @work(exit_on_error=False, group="cam", description="ranking layers")
    async def rank_family(self, session: Session, request: CamRequest, explainer: PhotoExplainer | None,
                          cancel: threading.Event) -> None:
        panel = self.query_one(CamPanel)
        ranking, explainer = await in_thread(camlink.rank, session, request, explainer, cancel=cancel,
                                             progress=lambda done, total: panel.post_message(CamProgress(done, total)))
        self.post_message(RankDone(ranking, explainer))

    @work(exclusive=True, exit_on_error=False, group="image", description="reading the image")
    async def check_image(self, path: Path) -> None:
        """Read the photo in a worker (a FIFO or a decompression bomb must not stall the app);
        ``on_image_checked`` takes it once it reads."""
        await in_thread(camlink.check_image, path)
        self.post_message(ImageChecked(path))

    def start_map(self, session: Session) -> bool:
        """Start the map for the session's current choices; refused (False) while one runs."""
        panel = self.query_one(CamPanel)
        if panel.refuse_while_running():
            return False
        cancel = panel.start(session, "the map")
        self.query_one(AttentionView).close()  # a new map is shown in the view's place
        self.compute_map(session, camlink.CamRequest.of(session), panel.explainer, cancel)
        return True

    # --- failures: every worker's, in one place --------------------------------------

    def on_work_failed(self, message: WorkFailed) -> None:  # a feature widget's worker: the same one handler
        self.on_worker_state_changed(Worker.StateChanged(message.worker, WorkerState.ERROR))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The user's mistakes and cancellations become notifications; anything else is a bug,
        logged with its traceback, then notified."""
        worker = event.worker
        if event.state != WorkerState.ERROR or worker.error is None:
            return
        failure = failures.describe(worker.error, worker.description, self.log_path)
        after = {"load": self._load_failed, "probe": self._probe_failed, "panel": self._tab_failed,
                 "cam": self._cam_failed, "cost": self._cost_failed}.get(worker.group)
        if after is not None:
            after(failure)
        title = "Grad-CAM cancelled" if failure.cancelled else FAILED.get(worker.group, "Failed")
        self.notify(failure.text, title=title, severity=failure.severity, markup=False,
                    timeout=12 if failure.bug else 8)

    def _load_failed(self, failure: failures.Failure) -> None:
        """A model on screen stays; with none, the screen says what failed and what to do."""
        header = self.query_one(ModelHeader)
        if self.session is not None:
            self.spec = self.session.loaded.spec
            header.show(self.session.loaded, self.session.tree)
            return
        header.failed(self.spec)
        tree = self.query_one(ModuleTreeView)
        tree.loading = False
        tree.root.set_label(Text(f"could not load {self.spec}", style="bold red"))
        self.query_one(StatsPanel).message(
            f"could not load {self.spec}: {failure.text}\n\nl opens another model, q quits")

    def _probe_failed(self, failure: failures.Failure) -> None:
        if self.session is not None:  # a model that fails a dummy forward still browses fine
            self.session.probe_error = failure.text

    def _cost_failed(self, failure: failures.Failure) -> None:
        if self.session is not None:
            self.session.cost_error = failure.text

    def _tab_failed(self, failure: failures.Failure) -> None:
        tab = self.query_one(TabbedContent).active
        if tab in SLOW_TABS:
            self._shown[tab] = None
            self._panel(tab).message(failure.text)

    def _cam_failed(self, failure: failures.Failure) -> None:
        self.query_one(CamPanel).failed()

    # --- what the workers bring back -------------------------------------------------

    def on_model_ready(self, message: ModelReady) -> None:
        """Everything the last model left goes (its diff, its statistics and a collection still
        running, its lens); the new one shows, and ``--diff`` starts on the first."""
        self.query_one(ActivityCollector).stop()
        self.query_one(LensPanel).forget()
        tabs = self.query_one(TabbedContent)
        (tabs.show_tab if lens_refusal(message.session.loaded) is None else tabs.hide_tab)(LENS_TAB)
        session = self.session = message.session
        self.spec = session.loaded.spec
        self.query_one(SearchBar).search_in(session.tree)
        self._shown = dict.fromkeys(TABS)
        self.query_one(ModelHeader).show(session.loaded, session.tree)
        tree = self.query_one(ModuleTreeView)
        tree.loading = False
        tree.diff = None
        _activity_column(tree, None)
        tree.marks, tree.target, tree.matches, tree.cost, tree.ranks = {}, None, frozenset(), None, {}
        tree.show(session.tree)
        tree.focus()
        self.current = 0
        panel = self.query_one(CamPanel)
        panel.reset()
        self.query_one(AttentionView).forget()
        panel.describe(session)
        self.refresh_tabs()
        self.call_after_refresh(self.probe_shapes, session)  # the tree paints before the probe competes
        self.query_one(DiffStatus).model_changed(session)

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

    def on_activity_ready(self, message: ActivityReady) -> None:
        """The tree switches to the activity column; the Stats tab shows the node's histogram."""
        session = self.session
        if session is not message.session:
            return
        session.activity = message.report
        _activity_column(self.query_one(ModuleTreeView), message.report).relabel()
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
        _activity_column(self.query_one(ModuleTreeView), None).relabel()
        self.forget_tab("stats")

    def on_shapes_ready(self, message: ShapesReady) -> None:
        session = self.session
        if session is not message.session:
            return  # a model loaded since
        session.eligibility, session.suggested, session.shapes = message.eligibility, message.suggested, message.shapes
        tree = self.query_one(ModuleTreeView)
        tree.marks = {name: verdict.kind for name, verdict in message.eligibility.items()}
        tree.shapes = {name: info.describe() for name, info in message.shapes.items()}
        tree.relabel()
        self._shown["stats"] = None
        self.refresh_tabs()

    def on_cost_ready(self, message: CostReady) -> None:
        session = self.session
        if session is not message.session:
            return
        session.cost = message.cost
        tree = self.query_one(ModuleTreeView)
        tree.cost = message.cost
        if tree.column.key != "params":
            tree.relabel()
        self._shown["stats"] = None
        self.refresh_tabs()

    def on_tab_ready(self, message: TabReady) -> None:
        if message.index == self.current:
            self._panel(message.content.tab).show(message.content)

    # --- the tabs follow the cursor --------------------------------------------------

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        """The cursor line repaints at once; the tabs follow when the keys pause (a held arrow
        key would otherwise queue one full tab render per line)."""
        index = self.query_one(ModuleTreeView).current_index()
        if index is not None and self.session is not None:  # a decoder block selects its lens row
            self.query_one(LensPanel).select_layer(self.session.node(index).name)
        if index is not None and index != self.current:
            self.current = index
            if self._tabs_timer is not None:
                self._tabs_timer.stop()
            self._tabs_timer = self.set_timer(TABS_PAUSE, self.refresh_tabs)

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self.refresh_tabs()

    def refresh_tabs(self) -> None:
        """Fill the active tab for the current node (the others fill when opened)."""
        if self.session is None or self.current is None:
            return
        tab = self.query_one(TabbedContent).active
        if tab in SELF_FILLED or self._shown.get(tab) == self.current:
            return
        self._shown[tab] = self.current
        node = self.session.node(self.current)
        size = max(len(self.session.tree.descendants(node)), node.state_dict_entries)
        if tab in SLOW_TABS and size > SYNC_LIMIT:
            self._panel(tab).message(f"reading {size:,} entries…")
            self.fill_slow_tab(tab, self.current)
            return
        self._panel(tab).show(jobs.tab_content(self.session, tab, self.current))

    def forget_tab(self, tab: str) -> None:
        """``tab`` fills again for the current node when next shown (its figures changed)."""
        self._shown[tab] = None

    def _panel(self, tab: str) -> StatsPanel | StateDictPanel | ApiPanel:
        """The panel of ``tab`` (``show`` takes that tab's ``tabs`` record)."""
        return {"stats": self.query_one(StatsPanel), "state_dict": self.query_one(StateDictPanel),
                "api": self.query_one(ApiPanel)}[tab]

    def jump(self, index: int) -> None:
        """Put the cursor on node ``index`` (opening the tree's path to it); the tabs follow."""
        self.query_one(ModuleTreeView).reveal(index)
        bar = self.query_one(SearchBar)
        if index in bar.matches:
            bar.count(len(bar.matches), bar.matches.index(index))
        self.current = index
        self.refresh_tabs()


def _activity_column(tree: ModuleTreeView, report: ActivationReport | None) -> ModuleTreeView:
    """The tree with ``report``'s figures in its activity column, or (None) without them, back
    to parameters if it showed them."""
    tree.activity = report
    if report is not None:
        tree.column = column_named("activity")
    elif tree.column.key == "activity":
        tree.column = COLUMNS[0]
    return tree
