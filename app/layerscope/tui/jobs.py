"""What the main screen's workers run in their threads: open a model, probe it, count its
cost, compare its weights with another checkpoint, read a tab's figures.

Importing this module imports torch, so the screens import it only once a worker runs
(the first frame paints before that). Functions here read the session's fixed parts
(model, tree) and return plain records; none touches a widget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from itertools import islice
from pathlib import Path

from torch import nn

from layerscope.activations import ActivationReport, model_activations
from layerscope.cam.targets import Eligibility
from layerscope.cost import CostTable, cost_stats, probe_cost
from layerscope.diff import DiffResult, diff_checkpoints
from layerscope.errors import LayerscopeError
from layerscope.models.loaded import LoadedModel
from layerscope.running import probe  # probe.probe_shapes looked up at each call: tests watch it
from layerscope.running.example_inputs import InputSpec, parse_inputs
from layerscope.running.jobcontrol import Cancel, Progress
from layerscope.running.probe import ShapeInfo
from layerscope.tree import build_tree
from layerscope.tree.iteration import iteration_view
from layerscope.tree.nodestats import node_stats
from layerscope.tui import activitytext, camlink, difftext
from layerscope.tui.session import Session
from layerscope.tui.tabs import (
    IterationCounts,
    NodeActivations,
    NodeChanges,
    NodeFigures,
    StateEntries,
    StateRow,
    TabContent,
)

ROW_LIMIT = 2000  # a table of more rows helps nobody; the caption gives the full count


def open_session(load: Callable[[], LoadedModel], image: Path) -> Session:
    """The loaded model and its tree."""
    loaded = load()
    return Session(loaded=loaded, tree=build_tree(loaded.model), image=image)


def probe_inputs(session: Session, texts: Sequence[str]) -> tuple[InputSpec, ...]:
    """Every ``--input`` parsed as the CLI parses them (positional ones in order, ``NAME=…``
    keywords), or the weights' own size as floats."""
    if texts:
        return parse_inputs(texts)
    return (InputSpec(tuple(session.loaded.input_shape)),)


def probe_shapes(
    session: Session, texts: Sequence[str]
) -> tuple[dict[str, ShapeInfo], dict[str, Eligibility], str | None]:
    """Output shapes at ``texts`` (none: the weights' own size), the eligibility they give each
    module (judged as the engine judges, with the first positional input's H×W), and the layer
    they suggest."""
    specs = probe_inputs(session, texts)
    model = session.loaded.model
    shapes = probe.probe_shapes(model, specs)
    image = next((s for s in specs if s.name is None), specs[0])
    hw = camlink.input_hw(image.shape)
    return shapes, camlink.eligibility(model, shapes, hw), camlink.probed_target(model, session.tree, shapes, hw)


def count_cost(session: Session, texts: Sequence[str]) -> CostTable:
    """MACs, FLOPs and activation memory of every module at the probe's inputs."""
    return probe_cost(session.loaded.model, probe_inputs(session, texts))[1]


def collect_activity(session: Session, texts: Sequence[str], cancel: Cancel) -> ActivationReport:
    """``A``: every node's activation statistics over example tensors for ``texts`` (every
    ``--input``), else over the session's photo, as ``layerscope activations`` computes them;
    ``cancel`` is asked after every module."""
    specs = parse_inputs(texts) if texts else ()
    report = model_activations(session.loaded, inputs=specs, files=[session.image], cancel=cancel)
    return report if specs else replace(report, inputs=session.image.name)


def diff_weights(session: Session, other: str, *, trust: bool, progress: Progress, cancel: Cancel) -> DiffResult:
    """What changed from the checkpoint the model's weights came from to ``other``, on the
    tree the app shows (``result.nodes[i]`` is its node ``i``)."""
    base = session.loaded.diff_base()
    if base is None:
        raise LayerscopeError(difftext.no_weights_file(session.loaded))
    return diff_checkpoints(base, other, trust=trust, tree=session.tree, progress=progress, cancel=cancel)


def node_changes(result: DiffResult, index: int, limit: int = ROW_LIMIT) -> NodeChanges:
    """Node ``index``'s change and the tensors of its subtree for the Stats tab, ranked as the
    CLI's ``diff`` ranks them: changed parameters by change, then buffers, unchanged last,
    ``num_batches_tracked`` left out."""
    node = result.nodes[index]
    tensors = result.ranked(result.tensors_of(node, subtree=True))
    return NodeChanges(node, tensors[:limit], max(0, len(tensors) - limit), difftext.largest_change(result))


def tab_content(session: Session, tab: str, index: int) -> TabContent:
    """What ``tab`` shows for node ``index``: the figures the CLI's ``stats`` and ``api`` print."""
    node = session.node(index)
    if tab == "stats":
        stats = node_stats(session.tree, node, session.shapes)
        if session.cost is not None:
            stats.update(cost_stats(node, session.cost))
        changes = node_changes(session.diff, index) if session.diff is not None else None
        return NodeFigures(stats, session.eligibility.get(node.name), changes, node_activations(session, index))
    if tab == "state_dict":
        return StateEntries(state_rows(session.module(index)), node.state_dict_entries, node.name)
    return IterationCounts(node.access, iteration_view(session.module(index)))


def node_activations(session: Session, index: int) -> NodeActivations | None:
    """Node ``index``'s activation statistics for the Stats tab, once ``A`` has collected them."""
    report = session.activity
    if report is None:
        return None
    return NodeActivations(activitytext.lookup(report, session.tree, index), activitytext.over(report))


def state_rows(module: nn.Module, limit: int = ROW_LIMIT) -> list[StateRow]:
    """The first ``limit`` entries of ``module.state_dict()``, keyed relative to the module."""
    rows = []
    for key, value in islice(module.state_dict(keep_vars=True).items(), limit):
        shape = "×".join(str(d) for d in getattr(value, "shape", ())) or "scalar"
        rows.append(
            StateRow(
                key=key,
                shape=shape,
                dtype=str(getattr(value, "dtype", type(value).__name__)).removeprefix("torch."),
                elements=value.numel() if hasattr(value, "numel") else 0,
                kind="parameter" if isinstance(value, nn.Parameter) else "buffer",
            )
        )
    return rows
