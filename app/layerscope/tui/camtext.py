"""What the Grad-CAM tab and its notifications say, as Rich text: pure functions of the
session and the engine's records, with no widget in sight (and no textual import), so
each line can be tested on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from layerscope.tui.fit import Name, first_fit, fitted, joined

if TYPE_CHECKING:
    from layerscope.cam.metrics import Faithfulness
    from layerscope.cam.ranking import Ranking
    from layerscope.tui.camlink import CamView
    from layerscope.tui.session import Session

IDLE = "press g to compute the map · r ranks layers"
RANDOM = ("⚠ random weights: this map shows nothing learned", "⚠ random weights: nothing learned")
# the scores' labels, from the roomiest to the tightest: a narrow tab keeps them and the rank on one row
SCORE_LABELS = (
    ("deletion ", " ↓  insertion ", " ↑  avg drop "),
    ("del ", "↓ ins ", "↑ drop "),
    ("del↓", " ins↑", " drop "),
)


def info_text(
    session: Session,
    view: CamView | None,
    running: str = "",
    scores: Faithfulness | None = None,
    note: str = "",
    width: int = 0,
) -> Text:
    """What the tab says above the picture; ``running`` names the work under way ("the map");
    ``scores`` are the shown map's, else ``note`` says where they stand. ``width`` (the tab's,
    once laid out) fits every line to one row: labels shorten, then names (a middle ellipsis),
    never a figure."""
    node = session.node(session.target) if session.target is not None else None
    target = (node.access_negative or node.access) if node is not None else "none yet: t or a"
    lines = [
        fitted(
            [Text("layer ", "dim"), Name(Text(target, "bold")), Text("  method ", "dim"), Text(session.method, "bold")],
            width,
        ),
        class_line(session, width),
    ]
    if not session.loaded.pretrained:
        lines.append(first_fit(width, *(Text(warning, "bold dark_orange") for warning in RANDOM)))
    if view is None:
        idle = (f"computing {running}… esc cancels", "computing… esc cancels") if running else (IDLE,)
        lines.append(first_fit(width, *(Text(line, "italic dim") for line in idle)))
        return joined(lines)
    lines.append(map_line(view, width))
    if view.result.all_zero:
        lines.append(
            first_fit(
                width,
                Text("the map is all zero: nothing here raises the score (random weights?)", "dark_orange"),
                Text("the map is all zero", "dark_orange"),
            )
        )
    lines += evidence_lines(session, view, scores, note, width)
    return joined(lines)


def class_line(session: Session, width: int = 0) -> Text:
    """The class the map explains and the photo: the key hint goes first, then the names shorten."""
    if session.class_index is None:
        hints = ("",)
    else:
        hints = (
            (" pinned (C unpins)", " pinned")
            if session.class_pinned
            else (" for this image (C pins)", " for this image")
        )
    lines = [
        [
            Text("class ", "dim"),
            Name(Text(session.class_name(session.class_index), "bold")),
            Text(hint, "dim"),
            Text("  image ", "dim"),
            Name(Text(session.image.name)),
        ]
        for hint in hints
    ]
    return first_fit(width, *(fitted(parts, 0) for parts in lines[:-1]), fitted(lines[-1], width))


def map_line(view: CamView, width: int = 0) -> Text:
    """Which map is shown: method, layer, class and its probability. A narrow tab leaves the
    layer to the line above, which names it (a map is only ever shown for the target), then
    says "cached" shorter, then not at all, then shortens the class name."""
    forms = [map_text(view, with_layer=True), map_text(view, with_layer=False, cached=" (cached)")]
    if view.reused:
        forms.append(map_text(view, with_layer=False, cached=""))
    fits = [form for form in forms if not width or form.cell_len <= width]
    return fits[0] if fits else fitted(map_parts(view, with_layer=False, cached=""), width)


def map_text(view: CamView, with_layer: bool, cached: str = "  (redrawn from cache)") -> Text:
    return fitted(map_parts(view, with_layer, cached), 0)


def map_parts(view: CamView, with_layer: bool, cached: str) -> list[Text | Name]:
    result = view.result
    parts: list[Text | Name] = [
        Text("map ", "dim"),
        Text(f"{result.method} at {result.layer}" if with_layer else result.method, "bold cyan"),
    ]
    if result.target is None:
        parts.append(Text(" for no class (class-blind)", "italic"))
    else:
        parts.append(Text(f" for {result.target}", "bold"))
        if result.target_name:
            parts += [Text(" "), Name(Text(result.target_name, "bold"))]
    score = next((p.probability for p in view.top5 if p.index == result.target), None)
    if score is not None:
        parts.append(Text(f" p={score:.3f}"))
    if result.precision != "float32":  # scored in bfloat16: the map says so
        from layerscope.cam.precision import label  # here: importing the app must not load torch

        parts.append(Text(f" · {label(result.precision)}", "dark_orange"))
    if view.reused and cached:
        parts.append(Text(cached, "dim"))
    return parts


def evidence_lines(
    session: Session, view: CamView, scores: Faithfulness | None, note: str, width: int = 0
) -> list[Text]:
    """The map's deletion/insertion scores (or where they stand) and its place in the last
    ranking, on one row where some labels allow it (else the place on its own row); and a
    warning when the method cannot tell one class from another."""
    result = view.result
    if scores is not None:
        forms = [scores_text(scores, labels) for labels in SCORE_LABELS]
    else:
        forms = [Text(note, "italic dim") if note else Text("scores: —", "dim")]
    ranking = session.ranking
    place = next((i for i, s in enumerate(ranking.layers, 1) if s.layer == result.layer), None) if ranking else None
    lines: list[Text]
    if ranking is not None and place is not None and ranking.method == result.method:
        rank = Text(f"rank #{place} of {len(ranking.layers)}", "bold green" if place == 1 else "bold")
        together = [Text.assemble(form, "  ", rank) for form in forms]
        fits = [line for line in together if not width or line.cell_len <= width]
        lines = fits[:1] or [first_fit(width, *forms), rank]
    else:
        lines = [first_fit(width, *forms)]
    if view.class_blind:
        lines.append(
            first_fit(
                width,
                Text(f"class-blind: {result.method} draws the same map for every class", "bold dark_orange"),
                Text("class-blind: the same map for every class", "bold dark_orange"),
            )
        )
    return lines


def scores_text(scores: Faithfulness, labels: tuple[str, ...]) -> Text:
    text = Text()
    values = (scores.deletion_auc, scores.insertion_auc, scores.average_drop)
    for label, value in zip(labels, values):
        text.append(label, "dim")
        text.append(f"{value:.3f}", "bold")
    return text


def scoring_note(done: int, total: int) -> str:
    return f"scoring the map: {done}/{total} passes · esc skips"


def ranked_title(ranking: Ranking) -> str:
    return f"Ranked {len(ranking.layers)} layers"


def ranked_text(ranking: Ranking, best_access: str | None, verdict: str) -> str:
    """The notification after ``r``: the leading eligible layer on this one photo (never called
    best: one photo cannot separate layers; ``layerscope report`` over a folder can) and the
    sanity check's verdict."""
    lead = ranking.leading
    if lead is None or best_access is None:
        return f"no layer is eligible to lead (each fails the sanity check or carries no score)\nsanity {verdict}"
    return (
        f"leads on this photo: {best_access} (insertion − deletion {lead.scores.gap:+.3f}); b makes it the "
        f"target; a folder report says whether it is best\nsanity {verdict}"
    )
