"""The header: model spec, weights (or a visible warning), device and parameter totals."""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from layerscope.models.loaded import LoadedModel
    from layerscope.tree import ModuleTree


def header_text(loaded: LoadedModel, tree: ModuleTree) -> Text:
    from layerscope.tree.nodestats import exact

    root = tree.root
    text = Text(no_wrap=True, overflow="ellipsis")  # one line: at 80 columns the map needs every row
    text.append(loaded.spec, "bold cyan")
    text.append(" · ")
    if loaded.pretrained:
        text.append(short_weights(loaded), "green")
    else:
        text.append("⚠ random weights", "bold dark_orange")  # short: the header must fit 80 columns
    text.append(f" · {loaded.device}")
    text.append(" · ")
    text.append(f"{exact(root.total_params)} params", "bold")
    if root.trainable_params == root.total_params:  # the common case, short enough for 80 columns
        text.append(" (all trainable)", "dim")
    else:
        text.append(f" ({exact(root.trainable_params)} trainable, {exact(root.frozen_params)} frozen)", "dim")
    return text


def short_weights(loaded: LoadedModel) -> str:
    """``IMAGENET1K_V1`` rather than ``MobileNet_V2_Weights.IMAGENET1K_V1``, a file's name without
    its folders: the header has one line of 80 columns (the CLI prints the full label)."""
    enum_member = re.fullmatch(r"\w+_Weights\.(\w+)", loaded.weights)
    return enum_member[1] if enum_member else PurePath(loaded.weights).name


class ModelHeader(Static):
    def on_mount(self) -> None:
        self.update(Text.assemble(("layerscope ", "bold"), ("loading…", "dim")))

    def show(self, loaded: LoadedModel, tree: ModuleTree) -> None:
        self.update(header_text(loaded, tree))

    def loading(self, what: str) -> None:
        self.update(Text.assemble(("layerscope ", "bold"), (f"loading {what}…", "dim")))

    def failed(self, what: str) -> None:
        """No model on screen: say so, and what the user can do (never a stale "loading…")."""
        self.update(
            Text.assemble(
                ("layerscope ", "bold"),
                (f"could not load {what}", "bold red"),
                (" · l opens another model · q quits", "dim"),
            )
        )
