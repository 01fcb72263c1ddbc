"""The hooked forward passes behind ``layerscope activations``.

One forward hook per selected module folds its output into that node's running
statistics the moment the module returns (before a later in-place op changes it),
and drops it: nothing of a batch outlives its pass. Hooks live only inside
``collect_activations``, training flags are restored, and the model is held with
``model_lock`` like every other hooked pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from layerscope.activations.running import NodeActivity, RunningActivity, saturation_bounds
from layerscope.errors import LayerscopeError, first_line
from layerscope.running.example_inputs import ExampleInputs
from layerscope.running.jobcontrol import Cancel, Progress, is_cancelled
from layerscope.running.jobcontrol import Cancelled as ActivationsCancelled
from layerscope.running.locking import model_lock, watched_pass
from layerscope.running.nested import first_float_tensor
from layerscope.running.probe import call_with

Batch = torch.Tensor | ExampleInputs  # an image batch, or any forward's arguments


@dataclass(frozen=True)
class ActivationReport:
    """Every selected node that ran, in the order the modules are named; ``examples`` is how
    many inputs (images) went through, ``inputs`` what they were."""

    nodes: dict[str, NodeActivity]
    examples: int
    inputs: str
    skipped: tuple[tuple[str, str], ...] = ()  # (file, why) for images that could not be read

    def get(self, name: str) -> NodeActivity | None:
        return self.nodes.get(name)


def collect_activations(
    model: nn.Module,
    batches: Iterable[Batch],
    *,
    names: Sequence[str] | None = None,
    inputs: str = "",
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> ActivationReport:
    """Statistics of every module's output (``names``: only these) over all ``batches``, streamed.
    ``cancel`` is asked after every module and between batches: ``ActivationsCancelled`` when true.

    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    >>> report = collect_activations(model, [torch.ones(2, 4)])
    >>> report.get("1").calls, report.get("1").shape
    (1, (1, 3))
    """
    if any(p.device.type == "meta" for p in model.parameters()):
        raise LayerscopeError("activations need real weights and arithmetic; load the model on cpu or cuda, not meta")
    with model_lock(model):
        recorder = _Recorder(model, names, cancel)
        examples = recorder.run(batches, progress)
    return ActivationReport(recorder.results(), examples, inputs)


def _batch_size(example: ExampleInputs) -> int:
    """The first tensor argument's leading size: how many examples one forward holds."""
    first = next((a for a in (*example.args, *example.kwargs.values()) if isinstance(a, torch.Tensor)), None)
    return int(first.shape[0]) if first is not None and first.dim() else 1


def _expected(batches: Iterable[Batch]) -> int:
    """How many examples ``batches`` holds, where it says (``ImageBatches.examples``, a list); else 0."""
    known = getattr(batches, "examples", None)
    if known is not None:
        return int(known)
    if isinstance(batches, Sequence):
        return sum(_batch_size(b if isinstance(b, ExampleInputs) else ExampleInputs((b,))) for b in batches)
    return 0


class _Recorder:
    def __init__(self, model: nn.Module, names: Sequence[str] | None, cancel: Cancel | None) -> None:
        self.model = model
        self.cancel = cancel
        wanted = set(names) if names is not None else None
        self.modules = [(n, m) for n, m in model.named_modules() if wanted is None or n in wanted]
        self.running: dict[str, RunningActivity] = {}
        self.layouts: dict[tuple[int, ...], int] = {}  # 3-D output shape -> channel dim most recently seen

    def run(self, batches: Iterable[Batch], progress: Progress | None) -> int:
        examples = 0
        with watched_pass(self.model) as handles:
            handles.extend(module.register_forward_hook(self._hook(name)) for name, module in self.modules)
            for batch in batches:
                self._check()
                examples += self._forward(batch)
                del batch  # not kept while the next one is read
                if progress is not None:
                    progress(examples, max(examples, _expected(batches)))
        return examples

    def _forward(self, batch: Batch) -> int:
        example = batch if isinstance(batch, ExampleInputs) else ExampleInputs((batch,))
        try:
            with torch.no_grad():
                call_with(self.model, example)
        except (LayerscopeError, ActivationsCancelled):
            raise
        except Exception as exc:  # the model refused this input: the user's to fix, in one line
            raise LayerscopeError(f"forward failed on {example.describe()}: {first_line(exc)}") from exc
        return _batch_size(example)

    def _hook(self, name: str):
        def hook(module: nn.Module, _inputs: object, output: object) -> None:
            self._check()
            tensor = first_float_tensor(output)
            if tensor is None:
                return
            running = self.running.get(name)
            if running is None:
                running = self.running[name] = RunningActivity(
                    name, saturation_bounds(module), self._channel_dim(module, tensor)
                )
            running.add(tensor)

        return hook

    def _check(self) -> None:
        if is_cancelled(self.cancel):
            raise ActivationsCancelled("activations cancelled")

    def _channel_dim(self, module: nn.Module, x: torch.Tensor) -> int | None:
        """Dim 1 of N×C×… (N×C features included); the last of a token layout N×L×C. A 3-D
        output is channels-first when a 1-d convolution, norm or pool made it, and so is
        anything of the same shape after it (its activation), until a token layer says otherwise."""
        if x.dim() < 2:
            return None
        if x.dim() != 3:
            return 1
        shape = tuple(x.shape[1:])
        if type(module).__name__.endswith("1d"):
            self.layouts[shape] = 1
        elif isinstance(module, (nn.Linear, nn.LayerNorm, nn.MultiheadAttention, nn.Embedding)):
            self.layouts[shape] = -1
        return self.layouts.get(shape, -1)

    def results(self) -> dict[str, NodeActivity]:
        return {name: self.running[name].result() for name, _ in self.modules if name in self.running}
