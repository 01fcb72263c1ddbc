"""``layerscope rank``: which target layer to use, with evidence.

Maps for every layer of a family come from one forward and one backward pass; each
map is then scored by deletion, insertion and confidence change, and the method is
put through the randomisation sanity check (``layerscope.cam.ranking``). The table
lists the layers best first and says when a method ignores the model.
"""

from __future__ import annotations

import argparse
import math
import sys

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from layerscope.cam import METHODS, CamResult, get_method
from layerscope.cam.methods import Method
from layerscope.cam.ranking import Ranking, rank_maps, verdict
from layerscope.cli import cam_cmd
from layerscope.cli.common import add_debug_option, fraction, int_between, print_json
from layerscope.errors import LayerscopeError, first_line
from layerscope.folder_report import claims
from layerscope.io import imaging
from layerscope.options import add_model_options
from layerscope.tree import ModuleTree

MAX_STEPS = 1000  # beyond this the curve is smooth already, and 16 layers would take 32,000 forwards


def add_parser(sub: argparse._SubParsersAction) -> None:
    rank = sub.add_parser(
        "rank",
        help="score every layer's map (deletion, insertion, sanity check) and rank the layers",
        description="Rank candidate target layers by how faithful their maps are to the model. "
        "No MODEL: mobilenet_v2 with ImageNet weights.",
    )
    add_model_options(rank, model_required=False)
    rank.add_argument("--image", default=None, help=f"photo to explain (default: {cam_cmd.DEFAULT_IMAGE.name})")
    rank.add_argument(
        "--layers",
        default="auto",
        help="comma-separated names, or auto (the blocks of the suggested layer's family, at most 16)",
    )
    rank.add_argument(
        "--method",
        default="gradcam",
        help=f"one of: {', '.join(METHODS)}; or a comma list, or all (every method that applies "
        "to the model), to rank method × layer pairs by the same evidence",
    )
    rank.add_argument(
        "--class",
        dest="target",
        default=None,
        metavar="K|NAME",
        help="class index or name to explain (default: the top prediction)",
    )
    rank.add_argument(
        "--steps",
        type=int_between(1, MAX_STEPS),
        default=20,
        help=f"deletion/insertion steps (default 20, at most {MAX_STEPS}): 2·steps − 1 forwards per layer",
    )
    rank.add_argument(
        "--no-sanity",
        dest="sanity",
        action="store_false",
        help="skip the randomisation sanity check (one extra pass per layer)",
    )
    rank.add_argument("--json", action="store_true", help="print the ranking as JSON")
    rank.add_argument("--out", default=None, metavar="PNG", help="write the maps as a grid, scores in each label")
    rank.add_argument("--alpha", type=fraction, default=0.5, help="weight of the heatmap in the overlay (0-1)")
    rank.add_argument("--colormap", default="jet", choices=sorted(imaging.COLORMAPS), help="heatmap colours")
    rank.add_argument("--grid", default=None, metavar="HxW", help="token grid of a transformer layer")
    rank.add_argument(
        "--prefix-tokens", type=int, default=None, metavar="N", help="class/register tokens before the grid tokens"
    )
    rank.add_argument(
        "--batch-size",
        type=int_between(1, cam_cmd.MAX_BATCH),
        default=None,
        help=f"perturbed copies per forward, at most {cam_cmd.MAX_BATCH} "
        "(default: measured for scorecam on the CPU, else 32)",
    )
    cam_cmd.add_precision_option(rank)
    add_debug_option(rank)
    rank.set_defaults(func=run_rank)


def run_rank(args: argparse.Namespace) -> int:
    everything = args.method.strip().lower() == "all"
    methods = list(METHODS.values()) if everything else [get_method(m) for m in _names(args.method)]
    args.method = methods[0].name  # CamJob checks and prints one method; the rest go through job.maps
    job = cam_cmd.CamJob(args)
    explainer = job.explainer
    layers = (
        explainer.layer_family() if args.layers == "auto" else [p.strip() for p in args.layers.split(",") if p.strip()]
    )
    results, skipped = _maps_of(job, layers, methods, everything)
    ranking = _ranked(job, results)
    access = {r.layer: _access(explainer.tree, r.layer) for r in results}
    decision = claims.decide(
        [claims.Candidate(s.label, {"photo": s.scores.gap}, s.excluded) for s in ranking.layers], one_photo=True
    )
    for method, why in skipped:
        print(f"skipped {method}: {why}", file=sys.stderr)
    if args.json:
        print_json({**ranking_json(ranking, access, args.steps), **decision, "precision": results[0].precision})
    else:
        job.print_header(results[0])
        job.print_precision(results[0])
        print_ranking(job.console, ranking, access, explainer.suggested_layer(), args.steps, decision)
    if args.out:
        place = {(s.method, s.layer): i for i, s in enumerate(ranking.layers, 1)}
        tiles = [(_tile_label(ranking, r, place), explainer.overlay(r, args.colormap, args.alpha)) for r in results]
        path = imaging.save_png(imaging.labelled_grid(tiles), args.out)
        if args.json:  # stdout stays pure JSON
            print(f"wrote   {path}", file=sys.stderr)
        else:
            job.wrote(path)
    return 0


def _names(text: str) -> list[str]:
    names = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not names:
        raise LayerscopeError("--method names no method")
    return names


def _maps_of(
    job: cam_cmd.CamJob, layers: list[str], methods: list[Method], everything: bool
) -> tuple[list[CamResult], list[tuple[str, str]]]:
    """Every method's maps at ``layers``. With ``all``, a transformer-native method on a model
    without global attention (or a CAM method on layers without channels) is skipped and said;
    a method named by the user fails in one line instead."""
    results: list[CamResult] = []
    skipped: list[tuple[str, str]] = []
    for method in methods:
        try:
            results += job.maps(layers, method)
        except LayerscopeError as exc:
            if not everything:
                raise
            skipped.append((method.name, first_line(exc)))
    if not results:
        raise LayerscopeError(f"no method applies to these layers: {skipped[0][1]}")
    return results, skipped


def _ranked(job: cam_cmd.CamJob, results: list[CamResult]) -> Ranking:
    args, explainer = job.args, job.explainer
    columns = (TextColumn("scoring maps"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("rank", total=None)
        chosen = job.target_label()
        return rank_maps(
            explainer.model,
            explainer.input,
            results,
            target=chosen,
            steps=args.steps,
            batch_size=args.batch_size or 32,
            sanity=args.sanity,
            categories=job.loaded.categories,
            reshape=explainer.reshape,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            random_weights=not job.loaded.pretrained,
        )


def _access(tree: ModuleTree, name: str) -> str:
    node = tree.get(name)
    return f"model.{name}" if node is None else (node.access_negative or node.access)


def ranking_json(ranking: Ranking, access: dict[str, str], steps: int) -> dict:
    return {
        "target": ranking.target,
        "target_name": ranking.target_name,
        "method": ranking.method,
        "steps": steps,
        "class_blind": ranking.blind,
        "methods": list(ranking.methods),
        "random_weights": ranking.random_weights,
        "layers": [
            {
                "method": s.method or ranking.method,
                "layer": s.layer,
                "access_expression": access[s.layer],
                "deletion_auc": round(s.scores.deletion_auc, 6),
                "insertion_auc": round(s.scores.insertion_auc, 6),
                "average_drop": round(s.scores.average_drop, 6),
                "increased": s.scores.increased,
                "all_zero": s.all_zero,
                "sanity_rho": None if s.rho is None or math.isnan(s.rho) else round(s.rho, 6),
                "sanity": s.sanity,
                "eligible": s.excluded is None,
                "not_eligible_because": s.excluded,
            }
            for s in ranking.layers
        ],
    }


def print_ranking(
    console: Console, ranking: Ranking, access: dict[str, str], suggested: str, steps: int, decision: dict
) -> None:
    """The table (each row's note from the paired evidence: on one photo, ``leads`` and ``tied``,
    never ``best``), then the claim, the candidates that cannot be best, and the sanity line."""
    name = f" {ranking.target_name}" if ranking.target_name else ""
    console.print(f"method  {ranking.method}")
    console.print(f"scores  p({ranking.target}{name}), {steps} steps, best first by insertion − deletion")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    mixed = len(ranking.methods) > 1
    headers = (
        ("#", "method", "layer", "del", "ins", "ins−del", "drop", "ρ", "")
        if mixed
        else ("#", "layer", "del", "ins", "ins−del", "drop", "ρ", "")
    )
    for header in headers:
        table.add_column(header, no_wrap=True, justify="left" if header in ("layer", "") else "right")
    for place, s in enumerate(ranking.layers, 1):
        notes = [
            claims.note(decision, s.label),
            "default" if s.layer == suggested else "",
            "zero map" if s.all_zero else "",
        ]
        cells = [
            str(place),
            *([s.method] if mixed else []),
            access[s.layer].removeprefix("model."),
            f"{s.scores.deletion_auc:.3f}",
            f"{s.scores.insertion_auc:.3f}",
            f"{s.scores.gap:+.3f}",
            f"{s.scores.average_drop:.3f}",
            _rho(s.rho),
            ", ".join(n for n in notes if n),
        ]
        table.add_row(*cells)
    console.print(table)
    console.print(
        "del, ins: deletion (lower is better) and insertion (higher) AUC; drop: average drop (lower); "
        "ρ: rank correlation with the map after re-initialising the layers above (lower: follows the model)",
        style="dim",
    )
    console.print(f"claim   {decision['claim']}", markup=False, highlight=False)
    if decision["not_eligible"]:
        console.print(f"excluded {claims.excluded_line(decision['not_eligible'])}", markup=False, highlight=False)
    line = Text("sanity  ")
    line.append(verdict(ranking), "bold yellow" if ranking.blind or ranking.random_weights else "")
    console.print(line)


def _rho(rho: float | None) -> str:
    if rho is None:
        return "-"
    return "flat" if math.isnan(rho) else f"{rho:+.2f}"


def _tile_label(ranking: Ranking, result: CamResult, place: dict[tuple[str, str], int]) -> str:
    s = ranking.score_of(result.layer, result.method)
    assert s is not None
    return f"#{place[(s.method, s.layer)]} {s.label} del {s.scores.deletion_auc:.2f} ins {s.scores.insertion_auc:.2f}"
