"""The Grad-CAM tab: the heatmap over the image, the method, target class, layer and top-5."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Static

if TYPE_CHECKING:
    from layerscope.tui.session import Session


class CamPanel(Vertical):
    def compose(self):
        yield Static(Text("", style="dim"), id="cam-info")
        yield Static("", id="cam-preview")

    def describe(self, session: Session, result) -> None:
        target = session.node(session.target).access if session.target is not None else "none (t or a)"
        info = Text()
        info.append("layer ", "dim")
        info.append(target, "bold")
        info.append("  method ", "dim")
        info.append(session.method, "bold")
        info.append("  class ", "dim")
        info.append(session.class_name(session.class_index), "bold")
        info.append("\nimage ", "dim")
        info.append(str(session.image))
        self.query_one("#cam-info", Static).update(info)

    def compute(self, session: Session) -> None:
        self.app.notify("the Grad-CAM engine is not available yet", severity="error")

    def cancel(self) -> bool:
        return False

    def redraw_from_cache(self, session: Session) -> None:
        pass

    def open_image(self, session: Session | None, path: Path) -> None:
        pass

    def save(self) -> None:
        self.app.notify("nothing to save yet: press g first", severity="warning")
