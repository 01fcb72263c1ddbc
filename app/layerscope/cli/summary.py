"""``layerscope.summary(model)``: the CLI's ``tree --cost --shapes`` table for a model held in Python.

The figures come from the functions the CLI calls (``build_tree``, ``probe_cost``, the
CLI's own header and line builders), so ``print(summary(model))`` and ``layerscope tree
--cost --shapes`` print the same numbers. The model is left as found: the probe restores
every training flag and removes its hooks, and a model that must change to be counted (lazy
modules, which the first forward sizes; another ``device``) is counted on a copy.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text
from torch import nn

from layerscope.cli.common import UNBOUNDED
from layerscope.cli.inspect_cmd import cost_header, model_header, tree_json, tree_lines
from layerscope.errors import BadArgumentError
from layerscope.models.loaded import LoadedModel
from layerscope.running.example_inputs import ExampleInputs, Inputs, InputSpec
from layerscope.running.probe import ShapeInfo, probe_shapes
from layerscope.tree import ModuleTree, Node, build_tree

if TYPE_CHECKING:
    from layerscope.cost import CostTable


@dataclass
class Summary:
    """What ``summary`` found: ``str()`` is the CLI's table, ``nodes`` the tree's rows,
    ``to_dict()`` the CLI's ``--json``, and Rich (a console, Jupyter) draws it to its width."""

    loaded: LoadedModel
    tree: ModuleTree
    shapes: dict[str, ShapeInfo] | None
    cost: CostTable | None
    depth: int | None = None
    dtype: torch.dtype | None = None

    @property
    def nodes(self) -> list[Node]:
        """Every module in ``named_modules`` order, with exact counts (``Node.total_params`` …)."""
        return list(self.tree.nodes)

    def lines(self, width: int = UNBOUNDED) -> Iterator[Text]:
        """The header, the cost totals and one line per module (folded runs as one), as the CLI prints."""
        yield model_header(self.loaded, self.tree)
        if self.cost is not None:
            yield cost_header(self.tree, self.cost, self.dtype)
        yield from tree_lines(self.tree, self.shapes, self.depth, fold=True, width=width, cost=self.cost)

    def to_dict(self) -> dict[str, Any]:
        """The nested tree as ``layerscope tree --cost --json`` writes it."""
        return tree_json(self.tree, self.tree.root, self.shapes, self.depth, self.cost)

    def __str__(self) -> str:
        buffer = io.StringIO()
        console = Console(file=buffer, width=UNBOUNDED, highlight=False, soft_wrap=False, color_system=None)
        for line in self.lines():
            console.print(line)
        return "\n".join(line.rstrip(" ") for line in buffer.getvalue().splitlines())

    def __repr__(self) -> str:
        return str(self)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines(options.max_width):
            line.end = "\n"  # the CLI's console.print ends each line; the lines are made fresh here
            yield line


def summary(
    model: nn.Module,
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    example: Any = None,
    *,
    depth: int | None = None,
    cost: bool = True,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Summary:
    """The module tree of ``model`` with exact counts, MACs, activation memory and output shapes.

    The same table as ``layerscope tree --cost --shapes``: parameters shared or tied between
    modules are counted once, repeated blocks fold into one line.

    Args:
        model: any ``torch.nn.Module``; it is left as found (training flags, hooks, device).
        input_size: the input with its batch, ``(1, 3, 224, 224)``, or one such shape per
            positional argument of ``forward``. Default: ``(1, 3, 224, 224)``.
        example: real inputs instead of sizes: a tensor, a tuple of positional arguments
            (``(x, mask)``) or a dict of keyword arguments (``{"input_ids": ids}``).
        depth: the deepest level printed (root is 0); None prints all.
        cost: count MACs, FLOPs and activation memory (one forward pass); False only probes shapes.
        device: count on this device instead of the model's own (on a copy; ``"meta"`` allocates nothing).
        dtype: the dtype the memory estimates assume (default: the model's own).

    Returns:
        A ``Summary``: print it, or read ``.nodes`` and ``.to_dict()``.

    Raises:
        LayerscopeError: the forward pass failed on the given input (one line: which input, why).

    Examples:
        >>> import layerscope
        >>> from torch import nn
        >>> s = layerscope.summary(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), input_size=(2, 4))
        >>> s.tree.root.total_params, s.cost.total.macs
        (40, 64)
    """
    if not isinstance(model, nn.Module):
        raise BadArgumentError(f"summary expects a torch.nn.Module, got {type(model).__name__}")
    loaded = LoadedModel.from_module(model)
    tree = build_tree(model)
    inputs, batch = _inputs(input_size, example, loaded)
    counted = _counted(model, device, loaded.device)
    if cost:
        from layerscope.cost import probe_cost

        shapes, table = probe_cost(counted, inputs, batch=batch)
        table = _described(table, example)
    else:
        shapes, table = probe_shapes(counted, inputs, batch=batch), None
    return Summary(loaded, tree, shapes, table, depth, dtype)


def _inputs(size: Any, example: Any, loaded: LoadedModel) -> tuple[Inputs, int]:
    """The probe's inputs and batch: example tensors as given, else shapes whose first dimension is the batch."""
    if size is not None and example is not None:
        raise BadArgumentError("summary takes input_size or example, not both")
    if example is not None:
        return _example(example), 1
    if size is None:
        return loaded.input_shape, 1
    shapes = [tuple(size)] if all(isinstance(d, int) for d in size) else [tuple(s) for s in size]
    if not all(len(s) >= 2 and all(isinstance(d, int) and d >= 1 for d in s) for s in shapes):
        raise BadArgumentError(
            f"input_size {tuple(size)!r}: give (batch, *shape), e.g. (1, 3, 224, 224), or one such tuple per input"
        )
    batches = {s[0] for s in shapes}
    if len(batches) != 1:
        raise BadArgumentError(f"input_size {tuple(size)!r}: every input needs the same batch")
    return [InputSpec(s[1:]) for s in shapes], batches.pop()


def _example(example: Any) -> ExampleInputs:
    if isinstance(example, ExampleInputs):
        return example
    if isinstance(example, Mapping):
        return ExampleInputs((), dict(example))
    if isinstance(example, (tuple, list)):
        return ExampleInputs(tuple(example))
    return ExampleInputs((example,))


def _described(table: CostTable, example: Any) -> CostTable:
    """Example tensors described as the CLI's ``--input`` specs (batch apart), so the header
    reads ``per batch of 2 at 3x32x32, mask=32x32:bool`` whichever way the input was given."""
    if example is None:
        return table
    given = _example(example)
    named = [(None, v) for v in given.args] + list(given.kwargs.items())
    tensors = [(k, v) for k, v in named if isinstance(v, torch.Tensor) and v.dim() >= 1]
    batches = {v.shape[0] for _, v in tensors}
    if not tensors or len(tensors) != len(named) or len(batches) != 1:
        return table
    specs = [InputSpec(tuple(v.shape[1:]), v.dtype, k) for k, v in tensors]
    batch = batches.pop()  # what the tensors held: the pass measured that batch, nodes included
    nodes = {name: replace(node, batch=batch) for name, node in table.nodes.items()}
    return replace(table, nodes=nodes, inputs=", ".join(s.describe() for s in specs), batch=batch)


def _counted(model: nn.Module, device: str | torch.device | None, own: torch.device) -> nn.Module:
    """The model itself, or a copy where counting would change it: on another device, or with
    lazy modules (their first forward sizes them)."""
    target = torch.device(device) if device is not None else own
    lazy = any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())
    if target == own and not lazy:
        return model
    try:
        return copy.deepcopy(model).to(target)
    except Exception as exc:
        raise BadArgumentError(f"summary could not copy the model to {target}: {exc}") from exc
