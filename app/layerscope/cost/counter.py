"""The counted pass: FLOPs and activation memory of every module from one forward.

The figures come from the shape probe's one forward pass, run under torch's own
``FlopCounterMode`` (exact, formula-based counts for matmuls, convolutions and
attention; free on the meta device), with formulas for the kernels it lacks
(``formulas``) and the same kernels on every device (``kernels``). Attribution to
modules uses the probe's hooks: a module's figure is how much the running totals
grew between entering and leaving its ``forward``, so children sum into their parent
by construction (plus whatever the parent computes itself) and a module called twice
counts twice.

Activation memory is watched in the same pass: every tensor an op creates on fresh
storage is counted once (views and in-place results share their input's storage),
and it stops being live when its last Python reference dies. That gives, per node,
the bytes its forward allocates (what autograd would keep for backward) and the
most bytes alive at once (what inference needs), on ``meta`` exactly as on a GPU.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

from layerscope.cost.formulas import MISSING_FORMULAS
from layerscope.cost.kernels import reference_kernels
from layerscope.cost.records import CostTable, Footprint, NodeCost, footprint_of, tensors_in
from layerscope.cost.zero_cost import costs_nothing, has_floating_input, op_name
from layerscope.running.example_inputs import Inputs, describe_inputs
from layerscope.running.probe import ShapeInfo, probe_shapes
from layerscope.thirdparty import BATCH_NORM_NO_TRAINING, OpCountingFlopMode, storage_key


@dataclass
class _Frame:
    name: str
    flops: int
    allocated: Footprint
    live: Footprint
    outer_peak: Footprint
    inputs: Footprint


@dataclass
class _Running:
    """What one module has accumulated so far."""

    flops: int = 0
    calls: int = 0
    allocated: Footprint = Footprint()
    output: Footprint = Footprint()
    peak: Footprint = Footprint()


def _bigger(a: Footprint, b: Footprint) -> Footprint:
    return a if a.bytes() >= b.bytes() else b


class CostCounter(OpCountingFlopMode):
    """``FlopCounterMode`` (through ``OpCountingFlopMode``, no per-module table) that also keeps running totals (FLOPs, allocated and live activation
    bytes) and reads them when the probe's hooks say a module starts and ends."""

    def __init__(self, *, on_meta: bool = False) -> None:
        super().__init__(display=False, custom_mapping=MISSING_FORMULAS)
        self.flops = 0
        self.allocated = Footprint()
        self.live = Footprint()
        self.peak = Footprint()
        self._storages: dict[int, tuple[Footprint, list]] = {}  # storage id -> (size, weak refs to its tensors)
        self._stack: list[_Frame] = []
        self._running: dict[str, _Running] = {}
        self._uncounted: dict[
            str, Counter[str]
        ] = {}  # module -> ops with no formula and no zero-cost convention: calls
        self._kernels = reference_kernels(on_meta=on_meta)

    def __enter__(self):
        super().__enter__()
        self._kernels.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            self._kernels.__exit__(*exc)
        finally:
            super().__exit__(*exc)

    # --- FlopCounterMode calls this for every op it runs ------------------------------

    def op_counted(self, func_packet, flops: int, out: object, args: tuple, kwargs: dict) -> None:
        """torch's own count (read back from its global row) added to the running total; an op
        with no formula that is not free by convention (``zero_cost``) and read floating-point
        data is named instead of silently counting zero."""
        if (
            func_packet not in self.flop_registry
            and not costs_nothing(func_packet)
            and has_floating_input(args, kwargs)
        ):
            for module in {frame.name for frame in self._stack}:
                self._uncounted.setdefault(module, Counter())[op_name(func_packet)] += 1
        self.flops += flops
        self._watch(_kept_outputs(func_packet, out, args, kwargs), args, kwargs)

    def _watch(self, out: object, args: tuple, kwargs: dict) -> None:
        made = list(tensors_in(out))
        if not made:
            return
        inputs = {storage_key(a) for a in tensors_in((args, kwargs))}
        for t in made:
            key = storage_key(t)
            entry = self._storages.get(key)
            if entry is None:
                if key in inputs:
                    continue  # a view or in-place result on storage we did not see created (weights, input)
                entry = self._storages[key] = (_storage_footprint(t), [])
                self.allocated += entry[0]
                self.live += entry[0]
                self.peak = _bigger(self.peak, self.live)
            entry[1].append(weakref.ref(t, lambda ref, key=key: self._release(key, ref)))

    def _release(self, key: int, ref: weakref.ref) -> None:
        """A tensor died; its storage stops being live with the last tensor on it."""
        entry = self._storages.get(key)
        if entry is None:
            return
        entry[1].remove(ref)
        if not entry[1]:
            del self._storages[key]
            self.live -= entry[0]

    # --- the probe's hooks ------------------------------------------------------------

    def enter(self, name: str, inputs: object) -> None:
        given = footprint_of(inputs)
        if not self._stack:  # the model's own input was made before the pass: live throughout
            self.live += given
            self.peak = _bigger(self.peak, self.live)
        self._stack.append(_Frame(name, self.flops, self.allocated, self.live, self.peak, given))
        self.peak = self.live

    def leave(self, name: str, output: object) -> None:
        if not self._stack or self._stack[-1].name != name:
            return  # a forward hook without its pre-hook (hooks added mid-pass): nothing to attribute
        frame = self._stack.pop()
        run = self._running.setdefault(name, _Running())
        run.flops += self.flops - frame.flops
        run.calls += 1
        run.allocated += self.allocated - frame.allocated
        run.output += footprint_of(output)
        run.peak = _bigger(run.peak, self.peak - frame.live + frame.inputs)
        self.peak = _bigger(frame.outer_peak, self.peak)

    def table(self, names: list[str], inputs: str, batch: int) -> CostTable:
        """Every module that ran, plus containers that never run themselves (a ``ModuleList``
        is iterated, not called) but whose children did: theirs is the children's sum."""
        ran = {
            name: NodeCost(
                flops=r.flops,
                calls=r.calls,
                allocated=r.allocated,
                output=r.output,
                peak=r.peak,
                uncounted_ops=dict(sorted(self._uncounted.get(name, {}).items())),
                batch=batch,
            )
            for name, r in self._running.items()
        }
        return CostTable(nodes=_fill_containers(ran, names, batch), inputs=inputs, batch=batch)


def _kept_outputs(func_packet, out: object, args: tuple, kwargs: dict) -> object:
    """What an op's call leaves in memory, the same on every device: batch norm in eval mode
    returns two saved-statistics vectors of C elements on ``meta`` but empty ones on the CPU
    (nothing is saved without training), so on meta they would add 2·C·4 bytes per layer."""
    if not isinstance(out, tuple):
        return out
    if func_packet is BATCH_NORM_NO_TRAINING:
        return out[0]
    if func_packet is torch.ops.aten.native_batch_norm and not kwargs.get(
        "training", args[5] if len(args) > 5 else True
    ):
        return out[0]
    return out


def _fill_containers(ran: dict[str, NodeCost], names: list[str], batch: int) -> dict[str, NodeCost]:
    """``names`` in ``named_modules()`` order: walked backwards, every child comes before its parent."""
    nodes = dict(ran)
    pending: dict[str, list[NodeCost]] = {}
    for name in reversed(names):
        if name not in nodes and name in pending:
            kids = pending.pop(name)
            nodes[name] = NodeCost(
                flops=sum(k.flops for k in kids),
                calls=0,
                allocated=sum((k.allocated for k in kids), Footprint()),
                output=kids[0].output,  # the last child's output (children were collected backwards)
                peak=max((k.peak for k in kids), key=lambda f: f.bytes()),
                uncounted_ops=dict(sorted(sum((Counter(k.uncounted_ops) for k in kids), Counter()).items())),
                batch=batch,
            )
        parent = name.rpartition(".")[0]
        if name and name in nodes and parent not in ran:
            pending.setdefault(parent, []).append(nodes[name])
    return nodes


def _storage_footprint(t: torch.Tensor) -> Footprint:
    nbytes = t.untyped_storage().nbytes()
    if t.is_floating_point():
        return Footprint(nbytes // t.element_size(), nbytes, 0)
    return Footprint(0, 0, nbytes)


def probe_cost(
    model: nn.Module, inputs: Inputs = (3, 224, 224), dtype: torch.dtype = torch.float32, *, batch: int = 1
) -> tuple[dict[str, ShapeInfo], CostTable]:
    """Shapes and cost of every module from one probe forward pass at ``batch``. ``inputs`` is
    one shape, specs (``layerscope.running.example_inputs.parse_inputs``) or real tensors (``ExampleInputs``).

    >>> from torch import nn
    >>> probe_cost(nn.Linear(3, 8), (10, 3), batch=5)[1].total.macs
    1200
    """
    first = next(model.parameters(), None)
    counter = CostCounter(on_meta=first is not None and first.device.type == "meta")
    shapes = probe_shapes(model, inputs, dtype, batch=batch, observer=counter)
    names = [name for name, _ in model.named_modules()]
    return shapes, counter.table(names, describe_inputs(inputs, dtype), batch)
