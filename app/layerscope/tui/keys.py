"""The app's keys, in one table that drives the bindings, the footer, ``?`` and the palette."""

from __future__ import annotations

from typing import NamedTuple

from textual.binding import Binding

from layerscope.tui.tabs import TABS


class Key(NamedTuple):
    key: str
    action: str
    label: str  # in the footer
    description: str  # in ``?`` and the command palette
    shown: bool  # in the footer

    @property
    def display(self) -> str:
        return (
            self.key.replace("slash", "/")
            .replace("question_mark", "?")
            .replace("left_square_bracket", "[")
            .replace("right_square_bracket", "]")
        )


KEYS: list[Key] = [
    Key(*row)
    for row in [
        ("slash", "search", "Search", "Search modules by name or class", True),
        ("n", "next_match", "Next", "Jump to the next search match", False),
        ("N", "previous_match", "Prev", "Jump to the previous search match", False),
        ("t", "set_target", "Target", "Make the highlighted module the Grad-CAM target", True),
        ("a", "suggested_target", "Suggest", "Jump to and select the suggested Grad-CAM target", True),
        ("g", "compute", "Grad-CAM", "Compute the Grad-CAM map for the target", True),
        ("r", "rank", "Rank", "Rank the highlighted layer's family by its maps' scores", False),
        ("b", "best_layer", "Lead", "Jump to the leading eligible layer and target it", False),
        ("p", "toggle_curves", "Curves", "Swap the map for its deletion and insertion curves, and back", False),
        ("m", "pick_method", "Method", "Choose the CAM method", True),
        ("c", "pick_class", "Class", "Choose the target class", True),
        ("C", "pin_class", "Pin", "Pin the target class: keep it when o opens another image", False),
        ("o", "open_image", "Image", "Open another image", True),
        ("l", "open_model", "Model", "Open another model, typed as on the command line", True),
        ("s", "save", "Save", "Save the overlay as PNG and .npy", True),
        ("y", "copy_access", "Copy", "Copy the access expression to the clipboard", True),
        ("d", "diff", "Diff", "Compare the weights with another checkpoint: the tree shows what changed", False),
        (
            "A",
            "activity",
            "Activity",
            "Collect every node's activations over the photo (or --input): the tree's "
            "activity column, Stats' histogram",
            False,
        ),
        ("f", "toggle_fold", "Fold", "Fold or unfold repeated blocks (×N)", False),
        ("x", "toggle_column", "Column", "Cycle the tree's column: params, MACs, activity, change", False),
        ("S", "toggle_shapes", "Shapes", "Show or hide each tree line's output shape (→ 1×64×56×56)", False),
        (
            "v",
            "attention('toggle')",
            "Attention",
            "Attention per head at the highlighted transformer block, in the map's place (v again: the map)",
            False,
        ),
        ("right_square_bracket", "attention('next_block')", "Block", "Attention view: the next block", False),
        ("left_square_bracket", "attention('previous_block')", "Block", "Attention view: the previous block", False),
        ("h", "attention('next_head')", "Head", "Attention view: one head at a time, then every head", False),
        ("H", "attention('previous_head')", "Head", "Attention view: one head at a time, backwards", False),
        (
            "L",
            "lens_prompt",
            "Lens",
            "Language model: type a prompt; the Lens tab shows what each layer predicts next at each token",
            False,
        ),
        ("question_mark", "help", "Help", "Show the keys", True),
        ("q", "quit", "Quit", "Quit layerscope", True),
    ]
]

# what a narrow footer keeps longest (80 columns: from compute on); the rest are in ? and the palette
FOOTER_KEEP = (
    "quit",
    "help",
    "save",
    "copy_access",
    "compute",
    "pick_class",
    "open_image",
    "pick_method",
    "open_model",
    "search",
    "set_target",
    "suggested_target",
)


def bindings() -> list[Binding]:
    """The main screen's bindings: every key of ``KEYS``, escape, and 1–4 for the tabs.

    "/" is a priority binding: checked before keys are forwarded to the tree, so "/layer4"
    typed (or pasted) in one burst lands in the search field; the screen's ``check_action``
    lets it through to any text field that has focus."""
    search, *rest = KEYS
    keys = [Binding(search.key, search.action, search.label, priority=True, id=search.action)]
    keys += [Binding(key.key, key.action, key.label, show=key.shown, id=key.action) for key in rest]
    keys.append(Binding("escape", "cancel", "Cancel", show=False, id="cancel"))
    keys += [Binding(str(i), f"show_tab('{tab}')", tab, show=False, id=f"tab_{tab}") for i, tab in enumerate(TABS, 1)]
    return keys
