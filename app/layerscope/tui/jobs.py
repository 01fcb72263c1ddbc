"""What the main screen's workers run in their threads: open a model, probe it, count its
cost, read a tab's figures.

Importing this module imports torch, so the screens import it only once a worker runs
(the first frame paints before that). Functions here read the session's fixed parts
(model, tree) and return plain records; none touches a widget.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from pathlib import Path

import torch
from torch import nn

from layerscope import probe  # probe.probe_shapes looked up at each call: tests watch it
from layerscope.cam.targets import Eligibility
from layerscope.cost import CostTable, cost_stats, probe_cost
from layerscope.iteration import iteration_view
from layerscope.models.loaded import LoadedModel
from layerscope.probe import ShapeInfo, parse_input_spec
from layerscope.nodestats import node_stats
from layerscope.tree import build_tree
from layerscope.tui import camlink
from layerscope.tui.session import Session
from layerscope.tui.tabs import IterationCounts, NodeFigures, StateEntries, StateRow, TabContent

ROW_LIMIT = 2000  # a table of more rows helps nobody; the caption gives the full count


def open_session(load: Callable[[], LoadedModel], image: Path) -> Session:
    """The loaded model and its tree."""
    loaded = load()
    return Session(loaded=loaded, tree=build_tree(loaded.model), image=image)


def probe_input(session: Session, spec: str | None) -> tuple[tuple[int, ...], torch.dtype]:
    """``--input`` parsed (``3x224x224``, ``128:long``), or the weights' own size as floats."""
    if spec:
        return parse_input_spec(spec)
    return tuple(session.loaded.input_shape), torch.float32


def probe_shapes(
    session: Session, spec: str | None
) -> tuple[dict[str, ShapeInfo], dict[str, Eligibility], str | None]:
    """Output shapes at ``spec`` (None: the weights' own size), the eligibility they give each
    module (judged as the engine judges, with the input's H×W), and the layer they suggest."""
    shape, dtype = probe_input(session, spec)
    model = session.loaded.model
    shapes = probe.probe_shapes(model, shape, dtype)
    hw = camlink.input_hw(shape)
    return shapes, camlink.eligibility(model, shapes, hw), camlink.probed_target(model, session.tree, shapes, hw)


def count_cost(session: Session, spec: str | None) -> CostTable:
    """MACs, FLOPs and activation memory of every module at the probe's input."""
    shape, dtype = probe_input(session, spec)
    return probe_cost(session.loaded.model, shape, dtype)[1]


def tab_content(session: Session, tab: str, index: int) -> TabContent:
    """What ``tab`` shows for node ``index``: the figures the CLI's ``stats`` and ``api`` print."""
    node = session.node(index)
    if tab == "stats":
        stats = node_stats(session.tree, node, session.shapes)
        if session.cost is not None:
            stats.update(cost_stats(node, session.cost))
        return NodeFigures(stats, session.eligibility.get(node.name))
    if tab == "state_dict":
        return StateEntries(state_rows(session.module(index)), node.state_dict_entries, node.name)
    return IterationCounts(node.access, iteration_view(session.module(index)))


def state_rows(module: nn.Module, limit: int = ROW_LIMIT) -> list[StateRow]:
    """The first ``limit`` entries of ``module.state_dict()``, keyed relative to the module."""
    rows = []
    for key, value in islice(module.state_dict(keep_vars=True).items(), limit):
        shape = "×".join(str(d) for d in getattr(value, "shape", ())) or "scalar"
        rows.append(StateRow(
            key=key,
            shape=shape,
            dtype=str(getattr(value, "dtype", type(value).__name__)).removeprefix("torch."),
            elements=value.numel() if hasattr(value, "numel") else 0,
            kind="parameter" if isinstance(value, nn.Parameter) else "buffer",
        ))
    return rows
