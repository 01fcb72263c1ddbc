"""``diff_checkpoints``: the one pipeline behind ``layerscope diff`` and the app's diff mode.

Steps: open A (and B, or read B's LoRA adapter against A), find the architecture,
check that the files fit it and each other before reading any tensor, then stream:
one key at a time, read A's tensor and B's (or form A + ΔW), compare slice by slice,
hand the pages back. Last, sum the records over the module tree. Memory: a few slices
of one key's tensors (mapped files), never a whole checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from layerscope.diff.compare import Done, compare, compare_update, info_of, one_sided, reshaped
from layerscope.diff.inputs import Held, adapter_path, architecture, open_checkpoint
from layerscope.diff.lora import Adapter, read_adapter
from layerscope.diff.nodes import Skeleton, aggregate, skeleton_of_keys, skeleton_of_tree
from layerscope.diff.records import TensorDiff
from layerscope.diff.result import DiffResult, is_buffer_key
from layerscope.diff.sources import TensorSource, held_label
from layerscope.errors import LayerscopeError
from layerscope.running.jobcontrol import Cancel, Progress, is_cancelled
from layerscope.running.jobcontrol import Cancelled as DiffCancelled
from layerscope.tree import ModuleTree


def diff_checkpoints(
    a: Held,
    b: Held,
    *,
    arch: str | None = None,
    trust: bool = False,
    kwargs: Mapping[str, Any] | None = None,
    tree: ModuleTree | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    params_only: bool = False,
) -> DiffResult:
    """Compare checkpoint ``b`` (or a LoRA adapter folder) with checkpoint ``a``, per tensor and per node.

    One key at a time, never two whole checkpoints in memory: each tensor's relative change
    ``‖B − A‖ / ‖A‖``, largest absolute difference and cosine, summed over the module tree.

    Args:
        a: the base: a checkpoint file, a Hugging Face folder, or a state_dict or module held
            in memory (``model.state_dict()``, ``model``).
        b: the other side, as ``a``, or a PEFT LoRA adapter folder (compared as A + ΔW).
        arch: a model spec whose module tree the nodes follow (checked against A's keys).
        trust: allow files that run code when read.
        kwargs: keyword arguments for ``arch``'s builder.
        tree: the module tree the nodes follow (the app passes the one it shows); else ``arch``,
            else A's own architecture (a module, a whole-model file, a folder's config), else the keys' prefixes.
        progress: ``progress(done, total)`` before each tensor.
        cancel: asked before each tensor; true stops the diff (``DiffCancelled``).
        params_only: leave buffers (running statistics) out of every figure, for what training
            itself changed.

    Returns:
        A ``DiffResult``: ``tensors`` (one per key), ``nodes`` (per module, pre-order), notes.

    Raises:
        LayerscopeError: a missing or unsafe file, keys that do not fit ``arch``, a broken adapter (one line).

    Examples:
        >>> import torch
        >>> from layerscope.diff import diff_checkpoints
        >>> model = torch.nn.Linear(2, 2)
        >>> tuned = {k: v + 1 for k, v in model.state_dict().items()}
        >>> [t.status for t in diff_checkpoints(model, tuned).tensors]
        ['changed', 'changed']
    """
    notes: list[str] = []
    label_a, label_b = (side if isinstance(side, str) else held_label(side) for side in (a, b))
    with open_checkpoint(a, trust=trust) as source_a:
        if tree is None:
            tree, note = architecture(a, source_a, arch, trust=trust, kwargs=kwargs or {})
            notes += [note] if note else []
        skeleton = skeleton_of_tree(tree) if tree is not None else None
        if skeleton is not None and arch is not None:
            check_fit(skeleton, source_a.keys(), label_a, arch)
        step = Stepper(progress, cancel)
        adapter_folder = adapter_path(b)
        if adapter_folder is not None:
            adapter = read_adapter(adapter_folder, label_b, key_aliases(source_a.keys(), skeleton), trust=trust)
            with one_thread():
                tensors = diff_adapter(source_a, adapter, step)
        else:
            with open_checkpoint(b, trust=trust) as source_b, one_thread():
                tensors = diff_sources(source_a, source_b, step)
            adapter = None
    buffers = tree.buffer_keys() if tree is not None else frozenset()
    if params_only:  # every figure, node sums included, over parameters alone
        tensors = [t for t in tensors if not is_buffer_key(t.key, buffers)]
    skeleton = skeleton or skeleton_of_keys(tensors)
    nodes, unplaced = aggregate(skeleton, tensors)
    if unplaced and tree is not None:
        notes.append(f"{len(unplaced)} key(s) name no module of {tree.model_class}; counted at the closest one")
    return DiffResult(
        a=label_a,
        b=label_b,
        architecture=tree.model_class if tree is not None else None,
        tensors=tuple(tensors),
        nodes=tuple(nodes),
        runs=skeleton.runs,
        lora=adapter.report if adapter else None,
        unplaced=tuple(unplaced),
        notes=tuple(notes),
        buffer_keys=buffers,
    )


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one intra-op thread while slices are compared, restored after.

    The work is a stream of small memory-bound slices; splitting each across threads
    only adds a barrier per operation, and on a busy machine a barrier waits for a thread
    the OS has put to sleep: on a loaded 2-core machine 256 MiB took 12 s on two threads
    and 0.4 s on one. One core streams float32 at about 1 GB/s, faster than most disks."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Stepper:
    """Before each tensor, the cancellation check and the progress report; a last report at the end."""

    def __init__(self, progress: Progress | None, cancel: Cancel | None) -> None:
        self.progress, self.cancel = progress, cancel
        self.done = self.total = 0

    def __call__(self) -> None:
        """Before each tensor: stop if asked, else say how many are done."""
        if is_cancelled(self.cancel):
            raise DiffCancelled("diff cancelled")
        if self.progress is not None:
            self.progress(self.done, self.total)
        self.done += 1

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.total, self.total)


def check_fit(skeleton: Skeleton, keys: list[str], spec: str, arch: str) -> None:
    """``--arch`` names the model A was saved from: a key it has no module for is a mistake."""
    misfits = [key for key in keys if not skeleton.place(key)[1]]
    if misfits:
        more = f", … {len(misfits) - 3} more" if len(misfits) > 3 else ""
        raise LayerscopeError(
            f"{spec} does not fit --arch {arch}: {len(misfits)} key(s) name no module of it "
            f"({', '.join(misfits[:3])}{more})"
        )


def key_aliases(keys: list[str], skeleton: Skeleton | None) -> dict[str, str]:
    """Every name a base tensor answers to → its key: its own, and the model's spelling when
    the checkpoint uses an older one (an adapter names modules as the live model does)."""
    aliases = {key: key for key in keys}
    for key in keys if skeleton is not None else ():
        node, exact = skeleton.place(key)
        prefix = skeleton.names[node]
        if exact and prefix:
            aliases.setdefault(f"{prefix}.{key.rpartition('.')[2]}", key)
    return aliases


def diff_sources(source_a: TensorSource, source_b: TensorSource, step: Stepper) -> list[TensorDiff]:
    """Every key of A, then B's new ones; only same-shaped pairs are read, in A's order, each
    pair's successor asked for while it is compared."""
    keys_a, keys_b = source_a.keys(), source_b.keys()
    in_a, in_b = set(keys_a), set(keys_b)
    if keys_a and keys_b and not in_a & in_b:
        raise LayerscopeError(
            f"{source_a.label} and {source_b.label} share no tensor name: they are not two versions of one model"
        )
    added = [key for key in keys_b if key not in in_a]
    shared = [key for key in keys_a if key in in_b]
    following = dict(zip(shared, shared[1:]))
    step.total = len(keys_a) + len(added)
    out: list[TensorDiff] = []
    for key in keys_a:
        step()
        info_a = source_a.info(key)
        if key not in in_b:
            out.append(one_sided(key, info_a, "removed"))
        elif info_a.shape != (info_b := source_b.info(key)).shape:
            out.append(reshaped(key, info_a, info_b))
        else:
            out.append(read_pair(source_a, source_b, key, following.get(key)))
    for key in added:
        step()
        out.append(one_sided(key, source_b.info(key), "added"))
    step.finish()
    return out


def read_pair(source_a: TensorSource, source_b: TensorSource, key: str, after: str | None) -> TensorDiff:
    tensor_a = source_a.read(key)
    tensor_b = source_b.read(key)
    for source in (source_a, source_b):
        source.prefetch(key)
        if after is not None:
            source.prefetch(after)

    def done(part_a: torch.Tensor, part_b: torch.Tensor) -> None:
        source_a.release(key, part_a)
        source_b.release(key, part_b)

    try:
        return compare(key, tensor_a, tensor_b, done)
    finally:
        source_a.release(key, tensor_a)
        source_b.release(key, tensor_b)


def diff_adapter(source_a: TensorSource, adapter: Adapter, step: Stepper) -> list[TensorDiff]:
    """Every base tensor against what merging the adapter would make of it."""
    keys = source_a.keys()
    step.total = len(keys)
    out: list[TensorDiff] = []
    for key, after in zip(keys, [*keys[1:], None]):
        step()
        tensor = source_a.read(key)
        source_a.prefetch(key)
        if after is not None:
            source_a.prefetch(after)
        try:
            out.append(adapted(key, tensor, adapter, source_a, lambda part, _, key=key: source_a.release(key, part)))
        finally:
            source_a.release(key, tensor)
    step.finish()
    return out


def adapted(key: str, tensor: torch.Tensor, adapter: Adapter, source: TensorSource, done: Done) -> TensorDiff:
    """One base tensor against the adapter: updated, replaced whole, or untouched (``same``)."""
    update = adapter.updates.get(key)
    if update is not None:
        if update.left.shape[0] != (tensor.shape[0] if tensor.dim() else 1) or update.numel != tensor.numel():
            raise LayerscopeError(
                f"{adapter.report.folder} does not fit {source.label}: {update.module}'s update is "
                f"{update.left.shape[0]}×{update.right.shape[1]}, {key} is {tuple(tensor.shape)}"
            )
        return compare_update(key, tensor, update.slices(), done)
    replacement = adapter.replacements.get(key)
    if replacement is None:
        return compare(key, tensor, tensor, done)
    if replacement.shape != tensor.shape:
        return reshaped(key, info_of(tensor), info_of(replacement))
    return compare(key, tensor, replacement, done)
