"""What the Grad-CAM tab and its notifications say, as Rich text: pure functions of the
session and the engine's records, with no widget in sight (and no textual import), so
each line can be tested on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from layerscope.cam.metrics import Faithfulness
    from layerscope.cam.ranking import Ranking
    from layerscope.tui.camlink import CamView
    from layerscope.tui.session import Session

IDLE = "press g to compute the map · r ranks layers"


def info_text(session: Session, view: CamView | None, running: str = "", scores: Faithfulness | None = None,
              note: str = "", compact: bool = False, width: int = 0) -> Text:
    """What the tab says above the picture; ``running`` names the work under way ("the map");
    ``scores`` are the shown map's, else ``note`` says where they stand; ``compact`` (a narrow
    tab) shortens the scores' labels so they keep to one row; ``width`` (the tab's, when known)
    lets the map line drop its layer rather than wrap."""
    node = session.node(session.target) if session.target is not None else None
    target = (node.access_negative or node.access) if node is not None else "none yet: t or a"
    text = Text()
    text.append("layer ", "dim")
    text.append(target, "bold")
    text.append("  method ", "dim")
    text.append(session.method, "bold")
    text.append("\nclass ", "dim")
    text.append(session.class_name(session.class_index), "bold")
    if session.class_index is not None:
        text.append(" pinned (C unpins)" if session.class_pinned else " for this image (C pins)", "dim")
    text.append("  image ", "dim")
    text.append(session.image.name)
    if not session.loaded.pretrained:
        text.append("\n⚠ random weights: this map shows nothing learned", "bold dark_orange")
    if view is None:
        text.append(f"\ncomputing {running}… esc cancels" if running else f"\n{IDLE}", "italic dim")
        return text
    append_map_line(text, view, width)
    append_evidence(text, session, view, scores, note, compact)
    return text


def append_map_line(text: Text, view: CamView, width: int = 0) -> None:
    """Which map is shown: method, layer, class and its probability, and whether it is empty.
    A line longer than ``width`` leaves the layer to the line above, which names it (a map is
    only ever shown for the target), so it keeps to one row."""
    line = Text()
    append_map_text(line, view, with_layer=True)
    if width and line.cell_len > width:
        line = Text()
        append_map_text(line, view, with_layer=False, cached=" (cached)")
    text.append("\n")
    text.append_text(line)
    if view.result.all_zero:
        text.append("\nthe map is all zero: nothing here raises the score (random weights?)", "dark_orange")


def append_map_text(text: Text, view: CamView, with_layer: bool, cached: str = "  (redrawn from cache)") -> None:
    result = view.result
    text.append("map ", "dim")
    text.append(f"{result.method} at {result.layer}" if with_layer else result.method, "bold cyan")
    name = f" {result.target_name}" if result.target_name else ""
    if result.target is None:
        text.append(" for no class (class-blind)", "italic")
    else:
        text.append(f" for {result.target}{name}", "bold")
    score = next((p.probability for p in view.top5 if p.index == result.target), None)
    if score is not None:
        text.append(f" p={score:.3f}")
    if view.reused:
        text.append(cached, "dim")


def append_evidence(text: Text, session: Session, view: CamView, scores: Faithfulness | None, note: str,
                    compact: bool) -> None:
    """The map's deletion/insertion scores (or where they stand), its place in the last ranking,
    and a warning when the method cannot tell one class from another."""
    result = view.result
    text.append("\n")
    if scores is not None:
        labels = ("del ", "↓ ins ", "↑ drop ") if compact else ("deletion ", " ↓  insertion ", " ↑  avg drop ")
        for label, value in zip(labels, (scores.deletion_auc, scores.insertion_auc, scores.average_drop)):
            text.append(label, "dim")
            text.append(f"{value:.3f}", "bold")
    elif note:
        text.append(note, "italic dim")
    else:
        text.append("scores: —", "dim")
    ranking = session.ranking
    place = next((i for i, s in enumerate(ranking.layers, 1) if s.layer == result.layer), None) if ranking else None
    if ranking is not None and place is not None and ranking.method == result.method:
        text.append(f"  rank #{place} of {len(ranking.layers)}", "bold green" if place == 1 else "bold")
    if view.class_blind:
        text.append(f"\nclass-blind: {result.method} draws the same map for every class", "bold dark_orange")


def top5_table(view: CamView) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", justify="right")
    table.add_column(no_wrap=True, overflow="ellipsis")
    table.add_column(justify="right", style="bold")
    for p in view.top5:
        style = "bold magenta" if p.index == view.result.target else ""
        table.add_row(str(p.index), Text(p.name or "-", style=style), f"{p.probability:.3f}")
    return table


def detections_table(view: CamView) -> Table:
    """A detector's best boxes with their scores; ◎ marks the box the map explains (boxed)."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", justify="right")
    table.add_column(no_wrap=True, overflow="ellipsis")
    table.add_column(justify="right", style="bold")
    table.add_column(style="dim", no_wrap=True)
    for d in view.detections:
        target = view.box is not None and d.box == view.box
        table.add_row(f"#{d.rank}", Text(d.title, style="bold magenta" if target else ""), f"{d.score:.3f}",
                      "◎ boxed" if target else "")
    return table


def top5_line(view: CamView) -> Text:
    """The top-5 as wrapped text, for short terminals: two or three rows instead of five,
    which the map gets instead."""
    text = Text("top-5 ", style="dim")
    for i, p in enumerate(view.top5):
        if i:
            text.append(" · ", "dim")
        text.append(f"{p.index} {p.name or '-'}", "bold magenta" if p.index == view.result.target else "")
        text.append(f" {p.probability:.3f}", "bold")
    return text


def scoring_note(done: int, total: int) -> str:
    return f"scoring the map: {done}/{total} perturbed passes · esc skips"


def ranked_title(ranking: Ranking) -> str:
    return f"Ranked {len(ranking.layers)} layers"


def ranked_text(ranking: Ranking, best_access: str, verdict: str) -> str:
    """The notification after ``r``: the best layer and the sanity check's verdict."""
    return (f"best: {best_access} (insertion − deletion {ranking.best.scores.gap:+.3f}); b makes it the "
            f"target\nsanity {verdict}")
