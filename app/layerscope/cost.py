"""What each node costs: MACs and FLOPs, activation memory, and whether the model fits.

The figures come from the shape probe's one forward pass, run under torch's own
``FlopCounterMode`` (exact, formula-based counts for matmuls, convolutions and
attention; free on the meta device). Attribution to modules uses the probe's hooks:
a module's figure is how much the running totals grew between entering and leaving
its ``forward``, so children sum into their parent by construction (plus whatever
the parent computes itself) and a module called twice counts twice.

Activation memory is watched in the same pass: every tensor an op creates on fresh
storage is counted once (views and in-place results share their input's storage),
and it stops being live when its last Python reference dies. That gives, per node,
the bytes its forward allocates (what autograd would keep for backward) and the
most bytes alive at once (what inference needs), on ``meta`` exactly as on a GPU.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from layerscope.errors import LayerscopeError
from layerscope.probe import ShapeInfo, probe_shapes
from layerscope.report import exact, human_bytes
from layerscope.tree import ModuleTree, Node

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "float64": torch.float64, "float8": torch.float8_e4m3fn, "int8": torch.int8,
}
TRAINING_DTYPE = torch.bfloat16  # mixed precision computes activations in 16 bits
ADAM_MIXED_BYTES = 16  # fp16/bf16 weight + gradient (2 + 2), fp32 master weight + two moments (4 + 4 + 4): ZeRO §3
_MAC_UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))
# The CPU's fused attention kernel has no formula in torch's registry (the CUDA ones do): without
# it a transformer's attention would count as free on the CPU but not on meta or CUDA.


def _cpu_attention_flops(query_shape, key_shape, value_shape, *_args, out_shape=None, **_kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_MISSING_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


@dataclass(frozen=True, slots=True)
class Footprint:
    """Activation memory as floating-point elements plus other bytes (indices, masks), so a
    different ``--dtype`` rescales it without another forward pass."""

    float_elements: int = 0
    other_bytes: int = 0

    def bytes(self, itemsize: int) -> int:
        return self.float_elements * itemsize + self.other_bytes

    def __add__(self, other: Footprint) -> Footprint:
        return Footprint(self.float_elements + other.float_elements, self.other_bytes + other.other_bytes)

    def __sub__(self, other: Footprint) -> Footprint:
        return Footprint(self.float_elements - other.float_elements, self.other_bytes - other.other_bytes)


def footprint_of(value: object) -> Footprint:
    """The tensors inside an output (tuples and dicts included)."""
    floats = other = 0
    for t in tree_flatten(value)[0]:
        if isinstance(t, torch.Tensor):
            if t.is_floating_point():
                floats += t.numel()
            else:
                other += t.numel() * t.element_size()
    return Footprint(floats, other)


@dataclass(frozen=True, slots=True)
class NodeCost:
    """One module's cost over every call in the pass (children included)."""

    flops: int
    calls: int  # 0: a container that is iterated, never called (ModuleList): its children's sum
    allocated: Footprint  # every tensor its forward created on fresh storage
    output: Footprint  # what its calls returned
    peak: Footprint  # most activation memory alive at once while it ran, its inputs included

    @property
    def macs(self) -> int:
        """torch counts 2 FLOPs per multiply-accumulate for every op it counts (matmul, conv,
        attention), so MACs are exactly half."""
        return self.flops // 2


@dataclass(frozen=True)
class CostTable:
    """The cost of every module that ran, keyed by qualified name; ``""`` is the model."""

    nodes: dict[str, NodeCost]
    input_shape: tuple[int, ...]
    batch: int

    def get(self, name: str) -> NodeCost | None:
        return self.nodes.get(name)

    @property
    def total(self) -> NodeCost:
        return self.nodes[""]

    def run_macs(self, names: list[str]) -> int:
        """A folded run of siblings: their calls are distinct, so their MACs add up."""
        return sum(self.nodes[n].macs for n in names if n in self.nodes)

    def share(self, macs: int) -> float:
        total = self.total.macs
        return macs / total if total else 0.0


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
    return a if a.bytes(4) >= b.bytes(4) else b


class CostCounter(FlopCounterMode):
    """``FlopCounterMode`` that also keeps running totals (FLOPs, allocated and live activation
    bytes) and reads them when the probe's hooks say a module starts and ends."""

    def __init__(self) -> None:
        super().__init__(display=False, custom_mapping=_MISSING_FORMULAS)
        self.flops = 0
        self.allocated = Footprint()
        self.live = Footprint()
        self.peak = Footprint()
        self._storages: dict[int, list] = {}  # storage id -> [footprint, live tensors seen]
        self._stack: list[_Frame] = []
        self._running: dict[str, _Running] = {}
        self._fused = _FusedAttentionOnMeta()

    def __enter__(self):
        super().__enter__()
        self._fused.__enter__()
        return self

    def __exit__(self, *exc):
        self._fused.__exit__(*exc)
        return super().__exit__(*exc)

    # --- FlopCounterMode calls this for every op it runs ------------------------------

    def _count_flops(self, func_packet, out, args, kwargs):
        if func_packet in self.flop_registry:
            self.flops += self.flop_registry[func_packet](*args, **kwargs, out_val=out)
        super()._count_flops(func_packet, out, args, kwargs)
        self._watch(out, args, kwargs)
        return out

    def _watch(self, out: object, args: tuple, kwargs: dict) -> None:
        tensors = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not tensors:
            return
        inputs = {_storage_id(a) for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)}
        for t in tensors:
            key = _storage_id(t)
            entry = self._storages.get(key)
            if entry is None:
                if key in inputs:
                    continue  # a view or in-place result on storage we did not see created (weights, input)
                entry = self._storages[key] = [_storage_footprint(t), 0]
                self.allocated += entry[0]
                self.live += entry[0]
                self.peak = _bigger(self.peak, self.live)
            entry[1] += 1
            weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        entry = self._storages[key]
        entry[1] -= 1
        if entry[1] == 0:
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

    def table(self, names: list[str], input_shape: tuple[int, ...], batch: int) -> CostTable:
        """Every module that ran, plus containers that never run themselves (a ``ModuleList``
        is iterated, not called) but whose children did: theirs is the children's sum."""
        ran = {name: NodeCost(flops=r.flops, calls=r.calls, allocated=r.allocated, output=r.output, peak=r.peak)
               for name, r in self._running.items()}
        return CostTable(nodes=_fill_containers(ran, names), input_shape=input_shape, batch=batch)


def _fill_containers(ran: dict[str, NodeCost], names: list[str]) -> dict[str, NodeCost]:
    """``names`` in ``named_modules()`` order: walked backwards, every child comes before its parent."""
    nodes = dict(ran)
    pending: dict[str, list[NodeCost]] = {}
    for name in reversed(names):
        if name not in nodes and name in pending:
            kids = pending.pop(name)
            nodes[name] = NodeCost(
                flops=sum(k.flops for k in kids), calls=0,
                allocated=sum((k.allocated for k in kids), Footprint()),
                output=kids[0].output,  # the last child's output (children were collected backwards)
                peak=max((k.peak for k in kids), key=lambda f: f.bytes(4)),
            )
        parent = name.rpartition(".")[0]
        if name and name in nodes and parent not in ran:
            pending.setdefault(parent, []).append(nodes[name])
    return nodes


class _FusedAttentionOnMeta(TorchFunctionMode):
    """On meta, ``scaled_dot_product_attention`` falls back to its math decomposition, which
    materialises the S×S scores that every real device's fused kernel never allocates (at 4,096
    tokens that is gigabytes per layer). Meta calls go to the fused CPU kernel's meta function
    instead, so memory is counted as a CPU or GPU run spends it; FLOPs are the same either way."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            fused = _fused_on_meta(*args, **kwargs)
            if fused is not None:
                return fused
        return func(*args, **kwargs)


def _fused_on_meta(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                   enable_gqa=False) -> torch.Tensor | None:
    if query.device.type != "meta" or dropout_p or query.dim() != 4 or query.shape[1] != key.shape[1]:
        return None  # elsewhere torch picks the kernel itself; grouped heads keep the reference path
    try:
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, 0.0, is_causal, attn_mask=attn_mask, scale=scale)[0]
    except RuntimeError:
        return None


def _storage_id(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def _storage_footprint(t: torch.Tensor) -> Footprint:
    nbytes = t.untyped_storage().nbytes()
    if t.is_floating_point():
        return Footprint(nbytes // t.element_size(), 0)
    return Footprint(0, nbytes)


def probe_cost(
    model: nn.Module, input_shape: tuple[int, ...] = (3, 224, 224), dtype: torch.dtype = torch.float32,
    *, batch: int = 1,
) -> tuple[dict[str, ShapeInfo], CostTable]:
    """Shapes and cost of every module from one probe forward pass at ``batch``."""
    counter = CostCounter()
    shapes = probe_shapes(model, input_shape, dtype, batch=batch, observer=counter)
    return shapes, counter.table([name for name, _ in model.named_modules()], input_shape, batch)


def probe_shapes_and_cost(
    model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype = torch.float32,
) -> tuple[dict[str, ShapeInfo], CostTable | None, str | None]:
    """For a viewer that wants shapes first: the counted pass, or, should counting fail on some
    exotic op, a plain probe with the reason the cost is missing."""
    try:
        shapes, table = probe_cost(model, input_shape, dtype)
        return shapes, table, None
    except LayerscopeError as exc:
        shapes = probe_shapes(model, input_shape, dtype)  # raises too when the forward itself fails
        return shapes, None, str(exc)


# --- memory estimates ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """Bytes needed to run a node, each with the formula that produced it."""

    inference_bytes: int
    training_bytes: int
    inference_formula: str
    training_formula: str
    dtype: str
    training_dtype: str
    batch: int

    def as_json(self) -> dict[str, Any]:
        return {
            "inference_bytes": self.inference_bytes,
            "training_bytes": self.training_bytes,
            "formula": {"inference": self.inference_formula, "training": self.training_formula},
            "dtype": self.dtype,
            "training_dtype": self.training_dtype,
            "batch": self.batch,
        }


def parse_dtype(name: str | None) -> torch.dtype | None:
    if name is None:
        return None
    dtype = DTYPES.get(name.strip().lower())
    if dtype is None:
        raise LayerscopeError(f"unknown --dtype {name!r} (use {', '.join(DTYPES)})")
    return dtype


def estimate_memory(node: Node, cost: NodeCost, batch: int, dtype: torch.dtype | None = None) -> MemoryEstimate:
    """Inference: weights at ``dtype`` + buffers + the most activation memory alive at once.
    Training with Adam in mixed precision: 16 bytes per trainable parameter (ZeRO's count),
    frozen ones at the compute dtype, buffers, and every activation the forward keeps."""
    infer = dtype or _param_dtype(node)
    train = dtype or TRAINING_DTYPE
    s, t = infer.itemsize, train.itemsize
    inference = node.total_params * s + node.buffer_bytes + cost.peak.bytes(s)
    training = (ADAM_MIXED_BYTES * node.trainable_params + node.frozen_params * t + node.buffer_bytes
                + cost.allocated.bytes(t))
    infer_name, train_name = _dtype_name(infer), _dtype_name(train)
    return MemoryEstimate(
        inference_bytes=inference,
        training_bytes=training,
        inference_formula=f"params × {s} B ({infer_name}) + buffers + peak live activations "
                          f"({infer_name}, batch {batch})",
        training_formula=f"trainable params × {ADAM_MIXED_BYTES} B (Adam, mixed precision: 16-bit weight and "
                         f"gradient, fp32 master weight and two moments) + frozen params × {t} B + buffers + "
                         f"forward activations ({train_name}, batch {batch})",
        dtype=infer_name,
        training_dtype=train_name,
        batch=batch,
    )


def _param_dtype(node: Node) -> torch.dtype:
    """The node's own floating dtype (float32 when it has none or mixes several)."""
    floats = [DTYPES[d] for d in node.dtypes if d in DTYPES and DTYPES[d].is_floating_point]
    return floats[0] if len(set(floats)) == 1 else torch.float32


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --- figures for the CLI and the app -----------------------------------------------------


def cost_stats(node: Node, table: CostTable, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """The cost keys ``layerscope stats --cost --json`` adds (the app's Stats tab shows the same)."""
    cost = table.get(node.name)
    if cost is None:
        return {"macs": None, "macs_share": None, "flops": None, "calls": 0, "output_bytes": None, "activation_bytes": None,
                "activation_peak_bytes": None, "memory": None}
    s = (dtype or _param_dtype(node)).itemsize
    return {
        "macs": cost.macs,
        "macs_share": table.share(cost.macs),
        "flops": cost.flops,
        "calls": cost.calls,
        "output_bytes": cost.output.bytes(s),
        "activation_bytes": cost.allocated.bytes(s),
        "activation_peak_bytes": cost.peak.bytes(s),
        "memory": estimate_memory(node, cost, table.batch, dtype).as_json(),
    }


def human_macs(macs: int, unit: str = "MACs") -> str:
    """4089184256 -> '4.1 GMACs' (``unit='FLOPs'`` for FLOPs)."""
    for scale, prefix in _MAC_UNITS:
        if macs >= scale:
            return f"{macs / scale:.1f} {prefix}{unit}"
    return f"{macs} {unit}"


def format_cost_value(key: str, value: Any) -> str | None:
    """How people read a cost key; None for keys that are not cost keys."""
    if key not in ("macs", "flops", "memory", "macs_share"):
        return None
    if value is None:
        return "—"
    if key == "macs_share":
        return f"{value:.1%}"
    if key == "memory":
        return (f"inference {human_bytes(value['inference_bytes'])} = {value['formula']['inference']}\n"
                f"training {human_bytes(value['training_bytes'])} = {value['formula']['training']}")
    return f"{human_macs(value, 'MACs' if key == 'macs' else 'FLOPs')} ({exact(value)})"


def own_flops(tree: ModuleTree, node: Node, table: CostTable) -> int:
    """FLOPs a module computes itself, outside any child (attention's matmuls, a residual add)."""
    cost = table.get(node.name)
    if cost is None:
        return 0
    children = sum(c.flops for c in (table.get(tree.nodes[i].name) for i in node.children) if c is not None)
    return cost.flops - children


__all__ = [
    "CostCounter", "CostTable", "DTYPES", "Footprint", "MemoryEstimate", "NodeCost", "cost_stats", "estimate_memory",
    "format_cost_value", "human_macs", "own_flops", "parse_dtype", "probe_cost",
]
