"""What each head of each block looks at: the class token's attention over the patch grid.

Rollout and its kin fuse the heads and the blocks into one map; before trusting them one
wants to see the raw material, head by head (some heads look at the object, some at the
background, some at the class token itself). ``head_maps`` gives it as ``N×H×h×w`` grids
of attention probabilities, from one no-grad forward recorded by ``cam.attention``'s
``AttentionRecorder``: each call is reduced as it comes to its query rows, so a model's
every block costs ``blocks·H·T`` numbers, never ``blocks·H·T×T``.

Models without a class token (mean-pooled heads) get the mean of all tokens' rows, the
query their head reads; ``HeadMaps.query`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from layerscope.cam.attention import AttentionRecord, AttentionRecorder, check_global, last_block_for
from layerscope.cam.hooks import checked_input, model_guard
from layerscope.cam.reshape import Layout, infer_layout, model_hints
from layerscope.errors import LayerscopeError
from layerscope.running.probe import call_model


@dataclass(frozen=True)
class HeadMaps:
    """Every attending block's per-head maps over the patch grid: ``maps[i]`` is ``N×H×h×w``
    for ``blocks[i]``, raw probabilities (each row of ``T`` sums to 1 before the prefix
    tokens are cut off); ``query`` is "class token" or "mean of the tokens"."""

    blocks: tuple[str, ...]
    maps: tuple[Tensor, ...]
    query: str
    prefix: int

    def index(self, layer: str) -> int:
        """The block whose attention ``layer`` names: the block, a module inside it, or a
        container of blocks (its last); anything else, one line."""
        return last_block_for(layer, list(self.blocks))

    @property
    def heads(self) -> int:
        return int(self.maps[0].shape[1])


def all_head_maps(model: nn.Module, x: Tensor) -> HeadMaps:
    """Per block, per head, the class token's attention over the patch tokens, from one
    no-grad forward of ``x`` (``N×3×H×W``); the model is left as found (``model_guard``).

    Raises ``LayerscopeError`` (one line) when no attention runs, or it is not global."""
    x = checked_input(model, x)
    rows: list[tuple[Tensor, Tensor]] = []  # per call: the first query's row and the mean row, N×H×T

    def fold(probs: Tensor) -> None:
        probs = probs.detach().float()
        rows.append((probs[:, :, 0].clone(), probs.mean(dim=2)))

    with model_guard(model, grad=False) as handles:
        recorder = AttentionRecorder(model, handles, fold=fold)
        with recorder.recording():
            call_model(model, x)
    records = recorder.records
    tokens = records[0].shape[-1] if records else 0
    check_global(records, tokens, x.shape[0])
    layout = _layout(model, recorder, records, (int(x.shape[-2]), int(x.shape[-1])))
    h, w = layout.grid
    query = "class token" if layout.prefix > 0 else "mean of the tokens"
    blocks: dict[str, Tensor] = {}
    for record, (first, mean) in zip(records, rows):
        row = first if layout.prefix > 0 else mean
        blocks[record.block] = row[:, :, layout.prefix :].reshape(row.shape[0], row.shape[1], h, w)  # last call wins
    return HeadMaps(tuple(blocks), tuple(blocks.values()), query, layout.prefix)


def head_maps(model: nn.Module, x: Tensor, block: str) -> Tensor:
    """``N×H×h×w``: the class token's attention over the patch grid, per head, in ``block``
    (a transformer block, a module inside one, or a container of blocks: its last)."""
    found = all_head_maps(model, x)
    return found.maps[found.index(block)]


def _layout(
    model: nn.Module, recorder: AttentionRecorder, records: list[AttentionRecord], input_hw: tuple[int, int]
) -> Layout:
    """The patch grid and prefix tokens, read from a block's output tokens as the CAM reshape
    reads them (the model's hints first: timm's ``num_prefix_tokens``, torchvision's class token)."""
    tokens = records[-1].shape[-1]
    output = recorder.outputs.get(records[-1].block)
    shape = tuple(output.shape) if output is not None else (records[-1].shape[0], tokens, 1)
    layout = infer_layout([shape], input_hw, model_hints(model))
    if (
        not isinstance(layout, Layout)
        or layout.kind != "tokens"
        or int(torch.tensor(layout.grid).prod()) + layout.prefix != tokens
    ):
        why = layout if isinstance(layout, str) else layout.describe()
        raise LayerscopeError(
            f"the {tokens} attention tokens do not lay out as a patch grid ({why}); "
            "the attention view needs a ViT-style token sequence"
        )
    return layout
