"""The layerscope app: a module tree on the left, tabs about the highlighted node on the right.

The frame paints before torch is imported; loading, shape probing, slow tabs and
Grad-CAM run in workers (``threads.in_thread``) that post messages back. Every
worker's error reaches ``on_worker_state_changed``: it becomes a notification while
everything on screen stays as it was, and a bug's traceback goes to the log file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, TabbedContent, TabPane, Tree
from textual.worker import Worker, WorkerState

from layerscope.tui import failures
from layerscope.tui.messages import CostReady, ModelReady, PanelReady, RankDone, ShapesReady
from layerscope.tui.session import SAMPLE_IMAGE, Session
from layerscope.tui.threads import in_thread
from layerscope.tui.widgets.api import ApiPanel
from layerscope.tui.widgets.footer import KeyFooter
from layerscope.tui.widgets.gradcam import CamPanel
from layerscope.tui.widgets.header import ModelHeader
from layerscope.tui.widgets.module_tree import ModuleTreeView
from layerscope.tui.widgets.search import SearchBar, find_matches, search_keys
from layerscope.tui.widgets.state_dict import StateDictPanel
from layerscope.tui.widgets.stats import StatsPanel

if TYPE_CHECKING:
    from layerscope.models.loaded import LoadedModel

SEARCH_PAUSE = 0.15  # seconds of no typing before matches are highlighted
TABS_PAUSE = 0.03  # seconds the cursor rests before the tabs describe its node
SYNC_LIMIT = 3000  # subtrees up to this many modules / state_dict entries fill their tab at once

Loader = Callable[[], "LoadedModel"]

# (key, action, footer label, palette description, shown in the footer)
KEYS: list[tuple[str, str, str, str, bool]] = [
    ("slash", "search", "Search", "Search modules by name or class", True),
    ("n", "next_match", "Next", "Jump to the next search match", False),
    ("N", "previous_match", "Prev", "Jump to the previous search match", False),
    ("t", "set_target", "Target", "Make the highlighted module the Grad-CAM target", True),
    ("a", "suggested_target", "Suggest", "Jump to and select the suggested Grad-CAM target", True),
    ("g", "compute", "Grad-CAM", "Compute the Grad-CAM map for the target", True),
    ("r", "rank", "Rank", "Rank the highlighted layer's family by its maps' scores", False),
    ("b", "best_layer", "Best", "Jump to the best-ranked layer and make it the target", False),
    ("m", "pick_method", "Method", "Choose the CAM method", True),
    ("c", "pick_class", "Class", "Choose the target class", True),
    ("C", "pin_class", "Pin", "Pin the target class: keep it when o opens another image", False),
    ("o", "open_image", "Image", "Open another image", True),
    ("l", "open_model", "Model", "Open another model, typed as on the command line", True),
    ("s", "save", "Save", "Save the overlay as PNG and .npy", True),
    ("y", "copy_access", "Copy", "Copy the access expression to the clipboard", True),
    ("f", "toggle_fold", "Fold", "Fold or unfold repeated blocks (×N)", False),
    ("x", "toggle_column", "MACs", "Show MACs or parameters in the tree's right column", False),
    ("S", "toggle_shapes", "Shapes", "Show or hide each tree line's output shape (→ 1×64×56×56)", False),
    ("question_mark", "help", "Help", "Show the keys", True),
    ("q", "quit", "Quit", "Quit layerscope", True),
]
TABS = ("stats", "state_dict", "api", "gradcam")
# what a narrow footer keeps longest (80 columns: from compute on); the rest are in ? and the palette
FOOTER_KEEP = ("quit", "help", "save", "copy_access", "compute", "pick_class", "open_image", "pick_method",
               "open_model", "search", "set_target", "suggested_target")
# the notification title when a worker of this group fails
FAILED = {"load": "Model not loaded", "probe": "Shape probe failed", "panel": "Tab not filled",
          "cam": "Grad-CAM failed", "image": "Image not opened", "copy": "Not copied", "cost": "MACs not counted"}


class LayerscopeApp(App):
    """Browse ``load()``'s model; ``load`` runs in a worker so the frame paints at once."""

    CSS_PATH = "app.tcss"
    TITLE = "layerscope"
    BINDINGS = [
        # "/" is a priority binding: checked before keys are forwarded to the tree, so "/layer4"
        # typed (or pasted) in one burst lands in the search field; check_action lets it through
        # to any text field that has focus.
        Binding("slash", "search", "Search", priority=True, id="search"),
        *(Binding(key, action, label, show=shown, id=action) for key, action, label, _, shown in KEYS[1:]),
        Binding("escape", "cancel", "Cancel", show=False, id="cancel"),
        *(Binding(str(i), f"show_tab('{tab}')", tab, show=False, id=f"tab_{tab}") for i, tab in enumerate(TABS, 1)),
    ]

    target_index: reactive[int | None] = reactive(None, init=False)

    def __init__(
        self, load: Loader | LoadedModel, *, spec: str = "model", image: Path | None = None,
        save_dir: Path | None = None, probe_input: str | None = None, pixels: str | None = None,
    ) -> None:
        super().__init__()
        self.pixels = pixels  # "kitty" / "sixel": the terminal draws the Grad-CAM overlay's pixels
        self._probe_input = probe_input  # "3x224x224" or "128:long"; None: the weights' own size
        self.save_dir = Path(save_dir) if save_dir else Path.cwd()
        self._load = load if callable(load) else (lambda: load)
        self._spec = spec  # the model being loaded, or on screen
        self.log_path = failures.log_path()  # where a bug's traceback goes (the help screen says)
        self._image = Path(image) if image else SAMPLE_IMAGE
        self.session: Session | None = None
        self.current: int | None = None
        self.matches: list[int] = []
        self._shown: dict[str, int | None] = dict.fromkeys(TABS)
        self._search_keys: list[str] | None = None
        self._searched = ""
        self._search_timer: Timer | None = None
        self._tabs_timer: Timer | None = None

    # --- layout ----------------------------------------------------------------------

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
                    yield CamPanel(id="cam-panel")
        yield SearchBar(id="search")
        yield KeyFooter(FOOTER_KEEP)

    def on_mount(self) -> None:
        tree = self.query_one(ModuleTreeView)
        tree.loading = True
        tree.focus()
        self.query_one(ModelHeader).loading(self._spec)
        self.load_model(self._load)

    # --- workers ---------------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="load", description="loading the model")
    async def load_model(self, load: Loader) -> None:
        image = self.session.image if self.session else self._image
        self.post_message(ModelReady(await in_thread(_open_session, load, image)))

    @work(exclusive=True, exit_on_error=False, group="probe", description="probing shapes")
    async def probe_shapes(self, session: Session) -> None:
        """Shapes, eligibility judged as the engine judges it (the probe input's H×W and the
        model's hints), and the suggested target: all off the UI thread."""
        shapes = await in_thread(_probe, session, self._probe_input)
        if session is self.session:  # not a model that ``l`` has replaced meanwhile
            self.post_message(shapes)
            self.count_cost(session)

    @work(exclusive=True, exit_on_error=False, group="cost", description="counting MACs")
    async def count_cost(self, session: Session) -> None:
        """The counted pass runs after the plain one: counting every op costs several times a
        plain forward on a 100,000-module model, and marks and suggestions need only shapes."""
        cost = await in_thread(_count, session, self._probe_input)
        if session is self.session:
            self.post_message(CostReady(session, cost))

    @work(exclusive=True, exit_on_error=False, group="panel", description="filling the tab")
    async def fill_slow_tab(self, tab: str, index: int) -> None:
        session = self.session
        payload = await in_thread(self._panel_payload, tab, index)
        if session is self.session:
            self.post_message(PanelReady(tab, index, payload))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker's failure, in one place: the user's mistakes and cancellations become
        notifications; anything else is a bug, logged with its traceback, then notified."""
        worker = event.worker
        if event.state != WorkerState.ERROR or worker.error is None:
            return
        failure = failures.describe(worker.error, worker.description, self.log_path)
        after = {"load": self._load_failed, "probe": self._probe_failed, "panel": self._panel_failed,
                 "cam": self.query_one(CamPanel).failed, "cost": self._cost_failed}.get(worker.group)
        if after is not None:
            after(failure)
        title = "Grad-CAM cancelled" if failure.cancelled else FAILED.get(worker.group, "Failed")
        self.notify(failure.text, title=title, severity=failure.severity, markup=False,
                    timeout=12 if failure.bug else 8)

    # --- worker results --------------------------------------------------------------

    def on_model_ready(self, message: ModelReady) -> None:
        session = self.session = message.session
        self._spec = session.loaded.spec
        self._search_keys, self._searched, self.matches = None, "", []
        self._shown = dict.fromkeys(TABS)
        self.query_one(ModelHeader).show(session.loaded, session.tree)
        tree = self.query_one(ModuleTreeView)
        tree.loading = False
        tree.marks, tree.target, tree.matches, tree.cost, tree.ranks = {}, None, frozenset(), None, {}
        tree.show(session.tree)
        tree.focus()
        self.current = 0
        panel = self.query_one(CamPanel)
        panel.reset()
        panel.describe(session, None)
        self.refresh_tabs()
        self.call_after_refresh(self.probe_shapes, session)  # the tree paints before the probe competes

    def on_shapes_ready(self, message: ShapesReady) -> None:
        if self.session is None:
            return
        self.session.eligibility = message.eligibility
        self.session.suggested = message.suggested
        self.session.shapes = message.shapes
        tree = self.query_one(ModuleTreeView)
        tree.marks = {name: kind for name, (kind, _) in message.eligibility.items()}
        tree.shapes = {name: info.describe() for name, info in message.shapes.items()}
        tree.relabel()
        self._shown["stats"] = None
        self.refresh_tabs()

    def on_cost_ready(self, message: CostReady) -> None:
        if self.session is not message.session:
            return  # a model loaded since
        self.session.cost = message.cost
        tree = self.query_one(ModuleTreeView)
        tree.cost = message.cost
        if tree.column == "macs":
            tree.relabel()
        self._shown["stats"] = None
        self.refresh_tabs()

    def on_panel_ready(self, message: PanelReady) -> None:
        if message.index == self.current:
            self._show_payload(message.tab, message.index, message.payload)

    def _load_failed(self, failure: failures.Failure) -> None:
        """A model on screen stays; with none, the screen says what failed and what to do."""
        header = self.query_one(ModelHeader)
        if self.session is not None:
            self._spec = self.session.loaded.spec
            header.show(self.session.loaded, self.session.tree)
            return
        header.failed(self._spec)
        tree = self.query_one(ModuleTreeView)
        tree.loading = False
        tree.root.set_label(Text(f"could not load {self._spec}", style="bold red"))
        self.query_one(StatsPanel).message(
            f"could not load {self._spec}: {failure.text}\n\nl opens another model, q quits")

    def _probe_failed(self, failure: failures.Failure) -> None:
        if self.session is not None:  # a model that fails a dummy forward still browses fine
            self.session.probe_error = failure.text

    def _cost_failed(self, failure: failures.Failure) -> None:
        if self.session is not None:
            self.session.cost_error = failure.text

    def _panel_failed(self, failure: failures.Failure) -> None:
        tab = self.query_one(TabbedContent).active
        if tab in ("state_dict", "api"):
            self._shown[tab] = None
            self._panel(tab).message(failure.text)

    # --- the tabs follow the cursor --------------------------------------------------

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        """The cursor line repaints at once; the tabs follow when the keys pause (a held arrow
        key would otherwise queue one full tab render per line)."""
        index = self.query_one(ModuleTreeView).current_index()
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
        if tab == "gradcam" or self._shown.get(tab) == self.current:
            return
        self._shown[tab] = self.current
        node = self.session.node(self.current)
        size = max(len(self.session.tree.descendants(node)), node.state_dict_entries)
        if tab in ("state_dict", "api") and size > SYNC_LIMIT:
            self._panel(tab).message(f"reading {size:,} entries…")
            self.fill_slow_tab(tab, self.current)
        else:
            self._show_payload(tab, self.current, self._panel_payload(tab, self.current))

    def _panel(self, tab: str):
        return {"stats": self.query_one(StatsPanel), "state_dict": self.query_one(StateDictPanel),
                "api": self.query_one(ApiPanel)}[tab]

    def _panel_payload(self, tab: str, index: int) -> Any:
        session = self.session
        assert session is not None
        node = session.node(index)
        if tab == "stats":
            from layerscope.nodestats import node_stats

            stats = node_stats(session.tree, node, session.shapes)
            if session.cost is not None:
                from layerscope.cost import cost_stats

                stats.update(cost_stats(node, session.cost))
            return stats, session.eligibility.get(node.name)
        if tab == "state_dict":
            from layerscope.tui.widgets.state_dict import state_rows

            return state_rows(session.module(index)), node.state_dict_entries, node.name
        from layerscope.iteration import iteration_view

        return node.access, iteration_view(session.module(index))

    def _show_payload(self, tab: str, index: int, payload: Any) -> None:
        self._panel(tab).show(*payload)

    # --- keys ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "search" and (len(self.screen_stack) > 1 or isinstance(self.focused, Input)):
            return False  # "/" is just a character in a text field or a modal
        return True

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_search(self) -> None:
        self.query_one(SearchBar).open()

    @on(Input.Changed, "#search-input")
    def _search_changed(self, event: Input.Changed) -> None:
        """Highlight matches once typing pauses: 100,000 names per keystroke would lag."""
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_PAUSE, lambda: self._apply_search(event.value))

    def _apply_search(self, query: str) -> None:
        if self.session is None or query == self._searched:
            return
        self._searched = query
        if self._search_keys is None:
            self._search_keys = search_keys(self.session.tree)
        self.matches = find_matches(self._search_keys, query)
        tree = self.query_one(ModuleTreeView)
        tree.matches = frozenset(self.matches)
        tree.relabel()
        self.query_one(SearchBar).count(len(self.matches))

    @on(Input.Submitted, "#search-input")
    def _search_submitted(self) -> None:
        bar = self.query_one(SearchBar)
        if self._search_timer is not None:
            self._search_timer.stop()
        self._apply_search(bar.value)
        bar.close()
        self.query_one(ModuleTreeView).focus()
        if not self.matches:
            if bar.value.strip():
                self.notify(f"no module matches {bar.value.strip()!r}", severity="warning", markup=False)
            return
        start = self.current or 0
        self._jump(next((m for m in self.matches if m >= start), self.matches[0]))

    def action_next_match(self) -> None:
        if self.matches:
            here = self.current or 0
            self._jump(next((m for m in self.matches if m > here), self.matches[0]))

    def action_previous_match(self) -> None:
        if self.matches:
            here = self.current or 0
            self._jump(next((m for m in reversed(self.matches) if m < here), self.matches[-1]))

    def _jump(self, index: int) -> None:
        self.query_one(ModuleTreeView).reveal(index)
        if index in self.matches:
            self.query_one(SearchBar).count(len(self.matches), self.matches.index(index))
        self.current = index
        self.refresh_tabs()

    def action_cancel(self) -> None:
        bar = self.query_one(SearchBar)
        if bar.active:
            bar.close()
            self.query_one(ModuleTreeView).focus()
            return
        stopping = self.query_one(CamPanel).cancel()
        if stopping:
            self.notify(f"stopping {stopping}…", severity="warning", timeout=2)

    def action_copy_access(self) -> None:
        if self.session is None or self.current is None:
            return
        node = self.session.node(self.current)
        access = node.access_negative or node.access  # the [-1] spelling target-layer tables use
        self.copy_to_clipboard(access)  # the app's own clipboard, and OSC 52 to the terminal
        self.confirm_copy(access)

    @work(exclusive=True, exit_on_error=False, group="copy", description="copying to the clipboard")
    async def confirm_copy(self, text: str) -> None:
        """Say "Copied" only when a clipboard command confirmed it: OSC 52 never answers."""
        from layerscope.tui import clipboard

        if await clipboard.copy(text):
            self.notify(text, title="Copied", markup=False, timeout=3)
        else:
            self.notify(f"{text}\n{clipboard.UNCONFIRMED}", title="Copy by hand", markup=False, timeout=10)

    def action_toggle_fold(self) -> None:
        tree = self.query_one(ModuleTreeView)
        tree.refold(not tree.fold)
        self.notify("repeated blocks folded as ×N" if tree.fold else "repeated blocks shown one by one", timeout=2)

    def action_toggle_column(self) -> None:
        """Parameters or MACs on the right of each tree line; MACs come after the shape probe."""
        if self.session is None:
            return
        if self.session.cost is None:
            why = self.session.cost_error or self.session.probe_error or "still counting… try again in a moment"
            self.notify(why, title="No MACs to show", severity="warning", markup=False, timeout=4)
            return
        tree = self.query_one(ModuleTreeView)
        tree.column = "params" if tree.column == "macs" else "macs"
        tree.relabel()
        self.notify("tree shows MACs per forward pass" if tree.column == "macs" else "tree shows parameters",
                    timeout=2)

    def action_toggle_shapes(self) -> None:
        tree = self.query_one(ModuleTreeView)
        tree.show_shapes = not tree.show_shapes
        tree.relabel()
        if not tree.shapes:
            self.notify("output shapes appear once the shape probe has finished", timeout=3)
        else:
            self.notify("output shapes shown on tree lines" if tree.show_shapes else "output shapes hidden", timeout=2)

    def action_help(self) -> None:
        from layerscope.tui.screens.help import HelpScreen

        self.push_screen(HelpScreen(KEYS, self.log_path))

    async def action_quit(self) -> None:
        """Stop at once: a running map is told to stop, every worker is cancelled, and a thread
        blocked in I/O is left behind (``launch.run`` does not wait for it)."""
        self.query_one(CamPanel).cancel()
        self.workers.cancel_all()
        self.exit()

    def action_open_model(self) -> None:
        """``l``: MODEL and options as typed on the command line; the model on screen stays
        until the new one has loaded, and stays when it fails."""
        if self.query_one(CamPanel).refuse_while_running():
            return
        from layerscope.tui.screens.model_spec import ModelSpecScreen

        self.push_screen(ModelSpecScreen(self._spec), self._open_model)

    def _open_model(self, line: str | None) -> None:
        if not line:
            return
        from layerscope.errors import LayerscopeError
        from layerscope.options import loader_for_line

        try:
            spec, load = loader_for_line(line)
        except LayerscopeError as exc:
            self.notify(str(exc), title=FAILED["load"], severity="error", markup=False, timeout=8)
            return
        self._spec = spec
        self.query_one(ModelHeader).loading(spec)
        self.load_model(load)

    # --- Grad-CAM keys ---------------------------------------------------------------

    def action_set_target(self) -> None:
        """On a folded ×N row the target is the run's last member (``[-1]``, the layer Grad-CAM
        papers pick), and the notification says so."""
        if self.session is None or self.current is None:
            return
        run = self.query_one(ModuleTreeView).current_run()
        if run is None:
            self._set_target(self.current)
            return
        first, last = self.session.node(run[0]), self.session.node(run[-1])
        self._set_target(last.index, note=f"\nthe last of the folded {first.key}…{last.key} ×{len(run)}")

    def _set_target(self, index: int, note: str = "") -> None:
        session = self.session
        assert session is not None
        session.target = index
        tree = self.query_one(ModuleTreeView)
        tree.target = index
        tree.relabel()
        panel = self.query_one(CamPanel)
        panel.describe(session, None)
        node = session.node(index)
        kind, reason = session.eligibility.get(node.name, ("", ""))
        if kind == "none":
            self.notify(f"{node.access_negative or node.access}: {reason}{note}", title="Target not eligible",
                        severity="warning", markup=False)
        else:
            self.notify(f"{node.access_negative or node.access}{note}", title="Grad-CAM target", markup=False,
                        timeout=3)
        panel.redraw_from_cache(session)

    def action_suggested_target(self) -> None:
        """Jump to the suggested target: the engine's table, else the probe's guess. Never a
        forward pass here: before the probe has finished, say so and let the user retry."""
        if self.session is None:
            return
        from layerscope.errors import LayerscopeError
        from layerscope.tui import camlink

        try:
            index = camlink.suggested_target(self.session)
        except camlink.ProbePending as exc:
            self.notify(str(exc), title="No suggestion yet", severity="warning", markup=False, timeout=4)
            return
        except LayerscopeError as exc:
            self.notify(str(exc), title="No suggested target", severity="error", markup=False)
            return
        self._jump(index)
        self._set_target(index)

    def action_compute(self) -> None:
        if self.session is None:
            return
        panel = self.query_one(CamPanel)
        if panel.refuse_while_running():
            return
        if self.session.target is None:
            self.action_suggested_target()
            if self.session.target is None:
                return
        self.action_show_tab("gradcam")
        panel.compute(self.session)

    def action_rank(self) -> None:
        """Score the maps of the highlighted layer's family and rank them (worker; escape stops)."""
        if self.session is None or self.current is None:
            return
        node = self.session.node(self.current)
        kind, reason = self.session.eligibility.get(node.name, ("", ""))
        if kind == "none" or not node.name:
            why = reason or "the whole model has no single output map"
            self.notify(f"{node.access_negative or node.access}: {why}", title="Nothing to rank here",
                        severity="warning", markup=False)
            return
        if self.query_one(CamPanel).rank(self.session, self.current):
            self.action_show_tab("gradcam")
            self.notify("ranking the family of " + (node.access_negative or node.access), timeout=3, markup=False)

    def on_rank_done(self, message: RankDone) -> None:
        """Each ranked layer's tree line gets its place and score; ``b`` jumps to the best."""
        if self.session is None:
            return
        from layerscope.tui import camlink

        ranking = self.session.ranking = message.ranking
        tree = self.query_one(ModuleTreeView)
        tree.ranks = {s.layer: (place, s.scores.gap) for place, s in enumerate(ranking.layers, 1)}
        tree.relabel()
        self.query_one(CamPanel).describe(self.session, None)
        best = self.session.tree.get(ranking.best.layer)
        access = (best.access_negative or best.access) if best is not None else ranking.best.layer
        self.notify(f"best: {access} (insertion − deletion {ranking.best.scores.gap:+.3f}); b makes it the "
                    f"target\nsanity {camlink.verdict(ranking)}", title=f"Ranked {len(ranking.layers)} layers",
                    severity="warning" if ranking.blind else "information", markup=False, timeout=12)

    def action_best_layer(self) -> None:
        ranking = self.session.ranking if self.session is not None else None
        if ranking is None:
            self.notify("no ranking yet: press r on a layer first", severity="warning", timeout=4)
            return
        node = self.session.tree.get(ranking.best.layer)
        if node is not None:
            self._jump(node.index)
            self._set_target(node.index)

    def action_pick_method(self) -> None:
        if self.session is None:
            return
        from layerscope.tui import camlink
        from layerscope.tui.screens.pickers import MethodPicker

        def chosen(method: str | None) -> None:
            if method and self.session is not None:
                self.session.method = method
                self.query_one(CamPanel).describe(self.session, None)
                self.notify(f"method: {method}", timeout=2, markup=False)

        self.push_screen(MethodPicker(camlink.methods(), self.session.method), chosen)

    def action_pick_class(self) -> None:
        if self.session is None:
            return
        from layerscope.tui.screens.pickers import ClassPicker

        def chosen(index: int | None) -> None:
            if index is not None and self.session is not None:
                self.session.class_index = None if index < 0 else index
                self.session.class_pinned = self.session.class_pinned and index >= 0
                panel = self.query_one(CamPanel)
                panel.forget()
                panel.describe(self.session, None)
                self.notify(f"class: {self.session.class_name(self.session.class_index)}", timeout=2, markup=False)

        self.push_screen(ClassPicker(self.session.loaded.categories or []), chosen)

    def action_pin_class(self) -> None:
        session = self.session
        if session is None:
            return
        if session.class_index is None:
            self.notify("choose a class with c first: the top prediction follows each image", severity="warning",
                        markup=False)
            return
        session.class_pinned = not session.class_pinned
        self.query_one(CamPanel).describe(session, None)
        name = session.class_name(session.class_index)
        self.notify(f"{name}: kept for every image" if session.class_pinned else f"{name}: for this image only",
                    title="Class pinned" if session.class_pinned else "Class unpinned", markup=False, timeout=3)

    def action_open_image(self) -> None:
        if self.session is None:  # the photo belongs to a model's Grad-CAM: nothing to show it with
            self.notify("no model is open: l opens one", severity="warning", timeout=4)
            return
        if self.query_one(CamPanel).refuse_while_running():
            return
        from layerscope.tui.screens.image_path import ImagePathScreen

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.query_one(CamPanel).open_image(path)

        self.push_screen(ImagePathScreen(self.session.image), chosen)

    def action_save(self) -> None:
        self.query_one(CamPanel).save(self.save_dir)

    # --- command palette -------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for key, action, label, description, _ in KEYS:
            if action == "quit":
                continue
            shown = key.replace("slash", "/").replace("question_mark", "?")
            yield SystemCommand(f"{label} ({shown})", description, _runner(self, action))
        yield from super().get_system_commands(screen)


def _runner(app: App, action: str) -> Callable[[], Any]:
    return lambda: app.run_action(action)


def _open_session(load: Loader, image: Path) -> Session:
    """The loaded model and its tree (a worker thread: torch is imported here)."""
    loaded = load()
    from layerscope.tree import build_tree

    return Session(loaded=loaded, tree=build_tree(loaded.model), image=image)


def _probe_input(session: Session, probe_input: str | None) -> tuple[tuple[int, ...], Any]:
    """``--input`` parsed, or the weights' own size as floats."""
    import torch

    from layerscope.probe import parse_input_spec

    if probe_input:
        return parse_input_spec(probe_input)
    return tuple(session.loaded.input_shape), torch.float32


def _probe(session: Session, probe_input: str | None) -> ShapesReady:
    """Shapes for ``probe_input`` (None: the weights' own size) and what they make eligible."""
    from layerscope.probe import probe_shapes
    from layerscope.tui import camlink

    shape, dtype = _probe_input(session, probe_input)
    shapes = probe_shapes(session.loaded.model, shape, dtype)
    model, hw = session.loaded.model, camlink.input_hw(shape)
    verdicts = camlink.eligibility(shapes, hw, camlink.model_hints(model))
    return ShapesReady(shapes, verdicts, camlink.probed_target(model, session.tree, shapes, hw))


def _count(session: Session, probe_input: str | None) -> Any:
    """MACs, FLOPs and activation memory of every module at the probe's input."""
    from layerscope.cost import probe_cost

    shape, dtype = _probe_input(session, probe_input)
    return probe_cost(session.loaded.model, shape, dtype)[1]
