"""``L``: the Lens tab of a causal language model, between ``ActivityScreen`` and ``MainScreen``.

The tab is shown only for a causal language model (``layerscope.lens.check_causal_lm``
decides, as ``layerscope lens`` does); the ``LensPanel`` in it owns the work. Here are
the key, the prompt's checks and what the tree's cursor does to the tab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import TabbedContent, Tree

from layerscope.errors import LayerscopeError
from layerscope.tui.messages import ModelReady
from layerscope.tui.screens.activity import ActivityScreen
from layerscope.tui.screens.lens_prompt import LensPromptScreen
from layerscope.tui.widgets.lens import LensPanel
from layerscope.tui.widgets.module_tree import ModuleTreeView

if TYPE_CHECKING:
    from layerscope.models.loaded import LoadedModel

LENS_TAB = "lens"


def lens_refusal(loaded: LoadedModel) -> str | None:
    """Why ``loaded`` has no lens (one line), or None for a causal language model."""
    if loaded.source != "huggingface":  # says so without importing transformers
        return (f"{loaded.spec} is a {loaded.source} model ({type(loaded.model).__name__}); the Lens tab is for "
                "a Hugging Face causal language model")
    from layerscope.lens.language import check_causal_lm

    try:
        check_causal_lm(loaded)
    except LayerscopeError as exc:
        return str(exc)
    return None


class LensScreen(ActivityScreen):
    """The Lens tab follows the model: shown and emptied for a language model, hidden otherwise."""

    def on_mount(self) -> None:
        self.query_one(TabbedContent).hide_tab(LENS_TAB)

    def on_model_ready(self, message: ModelReady) -> None:
        self.query_one(LensPanel).forget()
        tabs = self.query_one(TabbedContent)
        if lens_refusal(message.session.loaded) is None:
            tabs.show_tab(LENS_TAB)
        else:
            tabs.hide_tab(LENS_TAB)

    def action_lens_prompt(self) -> None:
        """``L``: type a prompt (the last one offered again); a model without a lens says why."""
        if self.session is None:
            return
        why = lens_refusal(self.session.loaded)
        if why is not None:
            self.notify(why, title="No lens", severity="warning", markup=False, timeout=6)
            return
        self.app.push_screen(LensPromptScreen(self.query_one(LensPanel).prompt), self._prompt_typed)

    def _prompt_typed(self, prompt: str | None) -> None:
        if prompt is None or self.session is None:
            return
        try:
            self.query_one(LensPanel).run(self.session.loaded, prompt)
        except LayerscopeError as exc:
            self.notify(str(exc), title="Lens not read", severity="warning", markup=False, timeout=6)
            return
        self.query_one(TabbedContent).active = LENS_TAB

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        """A decoder block (or a module inside one) highlighted in the tree selects its row."""
        index = self.query_one(ModuleTreeView).current_index()
        if self.session is not None and index is not None:
            self.query_one(LensPanel).select_layer(self.session.node(index).name)
