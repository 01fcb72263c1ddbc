"""The main screen's keys: what each one does to the model on screen (``KEYS`` lists them).
``ModelScreen`` keeps the model, its workers and the tabs; here are the bindings and the
actions, each a few lines that ask the widgets (a feature's own, for d, A, L), the session or a worker."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.widgets import Input, TabbedContent

from layerscope.errors import LayerscopeError, first_line
from layerscope.tui import camtext, clipboard
from layerscope.tui.keys import KEYS, bindings
from layerscope.tui.lazy import camlink
from layerscope.tui.messages import CamDone, ImageChecked, RankDone
from layerscope.tui.screens.help import HelpScreen
from layerscope.tui.screens.image_path import ImagePathScreen
from layerscope.tui.screens.model import FAILED, LENS_TAB, ModelScreen
from layerscope.tui.screens.model_spec import ModelSpecScreen
from layerscope.tui.screens.pickers import ClassPicker, MethodPicker
from layerscope.tui.widgets.activity import ActivityCollector
from layerscope.tui.widgets.attention import AttentionView
from layerscope.tui.widgets.diffstatus import DiffStatus
from layerscope.tui.widgets.gradcam import CamPanel
from layerscope.tui.widgets.header import ModelHeader
from layerscope.tui.widgets.lens import LensPanel
from layerscope.tui.widgets.module_tree import ModuleTreeView
from layerscope.tui.widgets.search import SearchBar


class MainScreen(ModelScreen):
    """The tree and the tabs, driven by the keys of ``KEYS``."""

    BINDINGS = bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "search" and (len(self.app.screen_stack) > 1 or isinstance(self.focused, Input)):
            return False  # "/" is just a character in a text field or a modal
        return True

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_diff(self) -> None:
        if self.session is not None:
            self.query_one(DiffStatus).ask(self.session)

    def action_activity(self) -> None:
        if self.session is not None:
            self.query_one(ActivityCollector).start(self.session)

    def action_lens_prompt(self) -> None:
        if self.session is not None:
            self.query_one(LensPanel).ask(self.session.loaded, lambda: self.action_show_tab(LENS_TAB))

    def action_search(self) -> None:
        self.query_one(SearchBar).open()

    def on_search_bar_matched(self, message: SearchBar.Matched) -> None:
        tree = self.query_one(ModuleTreeView)
        tree.matches = frozenset(message.matches)
        tree.relabel()

    def on_search_bar_chosen(self, message: SearchBar.Chosen) -> None:
        """Enter: the first match from the cursor on (wrapping round), or why there is none."""
        self.query_one(ModuleTreeView).focus()
        if not message.matches:
            if message.query:
                self.notify(f"no module matches {message.query!r}", severity="warning", markup=False)
            return
        start = self.current or 0
        self.jump(next((m for m in message.matches if m >= start), message.matches[0]))

    def action_next_match(self) -> None:
        if (found := self.query_one(SearchBar).after(self.current or 0)) is not None:
            self.jump(found)

    def action_previous_match(self) -> None:
        if (found := self.query_one(SearchBar).before(self.current or 0)) is not None:
            self.jump(found)

    def action_cancel(self) -> None:
        """Escape: close the search, else stop the running diff, activations, map, scoring or ranking."""
        bar = self.query_one(SearchBar)
        if bar.active:
            bar.close()
            self.query_one(ModuleTreeView).focus()
            return
        if self.query_one(DiffStatus).stop(say=True) or self.query_one(ActivityCollector).stop(say=True):
            return
        stopping = self.query_one(CamPanel).cancel()
        if stopping:
            self.notify(f"stopping {stopping}…", severity="warning", timeout=2)

    def stop_work(self) -> None:
        """Before quitting: a running diff, collection or map is told to stop."""
        self.query_one(DiffStatus).stop()
        self.query_one(ActivityCollector).stop()
        self.query_one(CamPanel).cancel()

    async def action_quit(self) -> None:
        await self.app.action_quit()

    # --- the tree --------------------------------------------------------------------

    def action_copy_access(self) -> None:
        if self.session is None or self.current is None:
            return
        node = self.session.node(self.current)
        access = node.access_negative or node.access  # the [-1] spelling target-layer tables use
        self.app.copy_to_clipboard(access)  # the app's own clipboard, and OSC 52 to the terminal
        self.confirm_copy(access)

    @work(exclusive=True, exit_on_error=False, group="copy", description="copying to the clipboard")
    async def confirm_copy(self, text: str) -> None:
        """Say "Copied" only when a clipboard command confirmed it: OSC 52 never answers."""
        if await clipboard.copy(text):
            self.notify(text, title="Copied", markup=False, timeout=3)
        else:
            self.notify(f"{text}\n{clipboard.UNCONFIRMED}", title="Copy by hand", markup=False, timeout=10)

    def action_toggle_fold(self) -> None:
        tree = self.query_one(ModuleTreeView)
        tree.refold(not tree.fold)
        self.notify("repeated blocks folded as ×N" if tree.fold else "repeated blocks shown one by one", timeout=2)

    def action_toggle_column(self) -> None:
        """The tree's right column, cycled: parameters, MACs (after the shape probe), activity (after
        ``A``), change (after ``d``)."""
        if self.session is None:
            return
        column = self.query_one(ModuleTreeView).next_column()
        if column is None:
            why = self.session.cost_error or self.session.probe_error or "still counting… try again in a moment"
            self.notify(why, title="No MACs to show", severity="warning", markup=False, timeout=4)
            return
        later = "\nA adds an activity column (dead channels, NaN)" if self.session.activity is None else ""
        self.notify(column.says + later, timeout=2)

    def action_toggle_shapes(self) -> None:
        tree = self.query_one(ModuleTreeView)
        tree.show_shapes = not tree.show_shapes
        tree.relabel()
        if not tree.shapes:
            self.notify("output shapes appear once the shape probe has finished", timeout=3)
        else:
            self.notify("output shapes shown on tree lines" if tree.show_shapes else "output shapes hidden", timeout=2)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(KEYS, self.log_path))

    def action_open_model(self) -> None:
        """``l``: MODEL and options as typed on the command line; the model on screen stays
        until the new one has loaded, and stays when it fails."""
        if self.query_one(CamPanel).refuse_while_running():
            return
        self.app.push_screen(ModelSpecScreen(self.spec), self._open_model)

    def _open_model(self, line: str | None) -> None:
        if not line:
            return
        read_line = self.options.read_line
        if read_line is None:  # an app built without a launcher (a script's): it cannot read the line
            self.notify("this app was started without a command line to read models with", title=FAILED["load"],
                        severity="error", timeout=8)
            return
        try:
            spec, load = read_line(line)
        except LayerscopeError as exc:
            self.notify(str(exc), title=FAILED["load"], severity="error", markup=False, timeout=8)
            return
        self.spec = spec
        self.query_one(ModelHeader).loading(spec)
        self.load_model(load)

    # --- Grad-CAM --------------------------------------------------------------------

    def action_set_target(self) -> None:
        """On a folded ×N row the target is the run's last member (``[-1]``, the layer Grad-CAM
        papers pick), and the notification says so."""
        if self.session is None or self.current is None:
            return
        run = self.query_one(ModuleTreeView).current_run()
        if run is None:
            self.set_target(self.current)
            return
        first, last = self.session.node(run[0]), self.session.node(run[-1])
        self.set_target(last.index, note=f"\nthe last of the folded {first.key}…{last.key} ×{len(run)}")

    def set_target(self, index: int, note: str = "") -> None:
        """Make node ``index`` the Grad-CAM target; a map whose pass hooked it redraws at once."""
        session = self.session
        assert session is not None
        session.target = index
        tree = self.query_one(ModuleTreeView)
        tree.target = index
        tree.relabel()
        panel = self.query_one(CamPanel)
        panel.describe(session)
        node = session.node(index)
        verdict = session.verdict(index)
        access = node.access_negative or node.access
        if verdict is not None and not verdict.eligible:
            self.notify(f"{access}: {verdict.reason}{note}", title="Target not eligible", severity="warning",
                        markup=False)
        else:
            self.notify(f"{access}{note}", title="Grad-CAM target", markup=False, timeout=3)
        if panel.hooked(session):
            self.start_map(session)

    def action_suggested_target(self) -> None:
        """Jump to the suggested target: the engine's table, else the probe's guess. Never a
        forward pass here: before the probe has finished, say so and let the user retry."""
        if self.session is None:
            return
        try:
            index = camlink.suggested_target(self.session)
        except camlink.ProbePending as exc:
            self.notify(str(exc), title="No suggestion yet", severity="warning", markup=False, timeout=4)
            return
        except LayerscopeError as exc:
            self.notify(str(exc), title="No suggested target", severity="error", markup=False)
            return
        self.jump(index)
        self.set_target(index)

    def action_compute(self) -> None:
        if self.session is None:
            return
        if self.query_one(CamPanel).refuse_while_running():
            return
        if self.session.target is None:
            self.action_suggested_target()
            if self.session.target is None:
                return
        self.action_show_tab("gradcam")
        self.start_map(self.session)

    def action_rank(self) -> None:
        """Score the maps of the highlighted layer's family and rank them (worker; escape stops)."""
        session, index = self.session, self.current
        if session is None or index is None:
            return
        node, verdict = session.node(index), session.verdict(index)
        access = node.access_negative or node.access
        if (verdict is not None and not verdict.eligible) or not node.name:
            why = (verdict.reason if verdict is not None else "") or "the whole model has no single output map"
            self.notify(f"{access}: {why}", title="Nothing to rank here", severity="warning", markup=False)
            return
        panel = self.query_one(CamPanel)
        if panel.refuse_while_running():
            return
        cancel = panel.start(session, "the ranking of its family")
        self.rank_family(session, camlink.CamRequest.of(session, index), panel.explainer, cancel)
        self.action_show_tab("gradcam")
        self.notify("ranking the family of " + access, timeout=3, markup=False)

    def on_rank_done(self, message: RankDone) -> None:
        """Each ranked layer's tree line gets its place and score; ``b`` jumps to the best."""
        panel = self.query_one(CamPanel)
        panel.ranked(message.explainer)
        session = self.session
        if session is None:
            return
        ranking = session.ranking = message.ranking
        tree = self.query_one(ModuleTreeView)
        tree.ranks = {s.layer: (place, s.scores.gap) for place, s in enumerate(ranking.layers, 1)}
        tree.relabel()
        self.follow_choices()
        lead = session.tree.get(ranking.leading.layer) if ranking.leading is not None else None
        access = (lead.access_negative or lead.access) if lead is not None else None
        self.notify(camtext.ranked_text(ranking, access, camlink.verdict(ranking)), title=camtext.ranked_title(ranking),
                    severity="warning" if ranking.blind else "information", markup=False, timeout=12)

    def action_best_layer(self) -> None:
        ranking = self.session.ranking if self.session is not None else None
        if self.session is None or ranking is None:
            self.notify("no ranking yet: press r on a layer first", severity="warning", timeout=4)
            return
        node = self.session.tree.get(ranking.leading.layer) if ranking.leading is not None else None
        if node is not None:
            self.jump(node.index)
            self.set_target(node.index)

    def action_toggle_curves(self) -> None:
        """The curves behind the shown map's scores in its place (they follow every new map), or the map again."""
        shown = self.query_one(CamPanel).toggle_curves()
        self.action_show_tab("gradcam")
        self.notify("deletion and insertion curves in the map's place; p shows the map" if shown else
                    "the map again; p plots its curves", timeout=2)

    def action_pick_method(self) -> None:
        if self.session is None:
            return
        offered = camlink.methods(self.session.loaded.model)  # the attention methods for transformers only
        self.app.push_screen(MethodPicker(offered, self.session.method), self._method_chosen)

    def _method_chosen(self, method: str | None) -> None:
        if method and self.session is not None:  # the model on screen when the picker closes
            self.session.method = method
            self.notify(f"method: {method}", timeout=2, markup=False)
            self.follow_choices()

    def action_attention(self, step: str) -> None:
        """``v``: the attention view on the highlighted node's block, or closed; ``[ ] h H`` step it."""
        view = self.query_one(AttentionView)
        if step != "toggle" and (why := view.step(step)):
            self.notify(why, severity="warning", timeout=3)
        elif step == "toggle" and self.session is not None and self.current is not None:
            if view.toggle(self.session, self.session.node(self.current).name):
                self.action_show_tab("gradcam")

    def action_pick_class(self) -> None:
        if self.session is not None:
            self.app.push_screen(ClassPicker(self.session.loaded.categories or []), self._class_chosen)

    def _class_chosen(self, index: int | None) -> None:
        session = self.session
        if index is None or session is None:
            return
        session.class_index = None if index < 0 else index
        session.class_pinned = session.class_pinned and index >= 0
        self.notify(f"class: {session.class_name(session.class_index)}", timeout=2, markup=False)
        self.follow_choices()

    def follow_choices(self) -> None:
        """After ``m`` or ``c`` the lines say the new choice at once, and a map shown for the
        target is redrawn for it, as ``o`` does: from the photo's kept pass when the method
        allows (the explainer runs a new pass only for a new class). A map still computing
        is followed by the new one when it arrives (``on_cam_done``)."""
        session = self.session
        if session is None:
            return
        panel = self.query_one(CamPanel)
        panel.describe(session)
        if panel.outdated(session):
            self.start_map(session)

    def on_cam_done(self, message: CamDone) -> None:
        """A map arrived (the panel took it first); if ``m`` or ``c`` chose otherwise meanwhile,
        the map that choice asks for follows at once."""
        if message.view is self.query_one(CamPanel).view:  # drawn, not cancelled
            self.follow_choices()

    def action_pin_class(self) -> None:
        session = self.session
        if session is None:
            return
        if session.class_index is None:
            self.notify("choose a class with c first: the top prediction follows each image", severity="warning",
                        markup=False)
            return
        session.class_pinned = not session.class_pinned
        self.query_one(CamPanel).describe(session)
        name = session.class_name(session.class_index)
        self.notify(f"{name}: kept for every image" if session.class_pinned else f"{name}: for this image only",
                    title="Class pinned" if session.class_pinned else "Class unpinned", markup=False, timeout=3)

    def action_open_image(self) -> None:
        if self.session is None:  # the photo belongs to a model's Grad-CAM: nothing to show it with
            self.notify("no model is open: l opens one", severity="warning", timeout=4)
            return
        if self.query_one(CamPanel).refuse_while_running():
            return

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.check_image(path)

        self.app.push_screen(ImagePathScreen(self.session.image), chosen)

    def on_image_checked(self, message: ImageChecked) -> None:
        """The new photo reads: explain it from now on (again at once, if a map is shown)."""
        session, panel = self.session, self.query_one(CamPanel)
        if session is None or panel.refuse_while_running():  # a map started while the path was being read
            return
        reset = session.change_image(message.path)
        self.query_one(AttentionView).forget()
        self.photo_changed()
        panel.forget()
        self.action_show_tab("gradcam")
        back = "\nclass: back to the top prediction (C pins a class)" if reset else ""
        self.notify(f"{message.path}{back}", title="Image", markup=False, timeout=3)
        if panel.view is not None and session.target is not None:
            self.start_map(session)
        else:
            panel.describe(session)

    def action_save(self) -> None:
        view, session = self.query_one(CamPanel).view, self.session
        if view is None or session is None:
            self.notify("nothing to save yet: press g to compute a map first", severity="warning")
            return
        try:
            png, npy = camlink.save(view, self.options.save_dir, session.loaded.spec)
        except (LayerscopeError, OSError) as exc:
            self.notify(first_line(exc), title="Not saved", severity="error", markup=False)
            return
        self.notify(f"{png}\n{npy}", title="Saved", markup=False, timeout=8)
