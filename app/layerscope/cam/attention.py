"""Transformer-native maps: attention rollout, gradient-weighted rollout and LeGrad.

A CNN method on a ViT reshapes one block's tokens into a grid and weighs its channels;
these three read what a transformer does instead: how attention moves information
between tokens, block after block. Their raw material is every block's attention
probabilities ``A`` (``N×H×T×T``), recorded by ``AttentionRecorder`` on a scoped call
(``layerscope.attention``): the model's fused attention is computed step by step, with
``A`` inside the autograd graph, whatever kernel the model asked for. Each block's maps
are reduced as soon as its gradients are known, to one row of ``T`` numbers per image,
so a sweep over blocks keeps ``O(blocks·T)`` numbers, never every block's ``T×T``.

Blocks are found from the model, not from a list of architectures: an attention call
belongs to the innermost running child of a ``ModuleList`` or ``Sequential`` (timm's
``blocks.3``, torchvision's ``encoder.layers.encoder_layer_3``, Hugging Face's
``encoder.layer.3``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from layerscope.attention import AttentionCall, AttentionMode, explicit_attention
from layerscope.cam.hooks import flatten_output
from layerscope.errors import LayerscopeError

HEAD_FUSIONS = ("mean", "max", "min")
APPLIES_TO = (
    "ViT, DeiT, BEiT, EVA, DINOv2, CLIP image towers and other transformers with global "
    "self-attention (not Swin's windows, not convnets)"
)


@dataclass(frozen=True)
class RolloutOptions:
    """Attention rollout's conventions (Abnar & Zuidema 2020): heads fused by ``head_fusion``,
    then, per row, the ``discard_ratio`` smallest attentions to other tokens set to zero."""

    head_fusion: str = "mean"
    discard_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.head_fusion not in HEAD_FUSIONS:
            raise LayerscopeError(f"unknown head fusion {self.head_fusion!r}; choose one of: {', '.join(HEAD_FUSIONS)}")
        if not 0.0 <= self.discard_ratio < 1.0:
            raise LayerscopeError(f"discard ratio must be in [0, 1), got {self.discard_ratio}")


@dataclass
class AttentionRecord:
    """One attention call: the block it ran in, the shape of its probabilities ``N×H×T×T``, and
    the probabilities themselves unless they were folded into a rollout as they came."""

    block: str
    shape: tuple[int, ...]
    probs: Tensor | None


@dataclass
class AttentionRecorder:
    """Records every attention call of one forward, with the block it ran in and each block's
    output tokens. Hooks go into ``handles`` (``model_guard`` removes them); the mode is
    entered by ``recording()`` around the forward only."""

    model: nn.Module
    handles: list[RemovableHandle]
    fold: Callable[[Tensor], None] | None = None  # no gradients wanted: fold each call, keep nothing
    records: list[AttentionRecord] = field(default_factory=list)
    outputs: dict[str, Tensor] = field(default_factory=dict)
    _running: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, module in _block_candidates(self.model):
            self.handles.append(module.register_forward_pre_hook(self._entered(name)))
            self.handles.append(module.register_forward_hook(self._left(name)))

    def _entered(self, name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object) -> None:
            self._running.append(name)

        return hook

    def _left(self, name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            if self._running and self._running[-1] == name:
                self._running.pop()
            tensors, _ = flatten_output(output)
            if name not in self.outputs and tensors and tensors[0].dim() == 3:
                self.outputs[name] = tensors[0]

        return hook

    def _attend(self, call: AttentionCall) -> Tensor:
        out, probs = explicit_attention(call)
        self._record(probs)
        return out

    def _record(self, probs: Tensor) -> None:
        block = self._running[-1] if self._running else ""
        problem = _unlike_the_first(probs.shape, self.records[0].shape if self.records else probs.shape)
        if problem:
            raise LayerscopeError(f"{block or 'the model'} {problem}; these methods apply to {APPLIES_TO}")
        if self.fold is not None:
            self.fold(probs)
        self.records.append(AttentionRecord(block, tuple(probs.shape), None if self.fold else probs))

    @contextmanager
    def recording(self) -> Iterator[AttentionRecorder]:
        """Fused calls computed in the open, eager ones (a softmax over ``N×H×T×T``) read as they are."""
        with AttentionMode(self._attend, probabilities=self._record):
            yield self

    @property
    def blocks(self) -> list[str]:
        """The blocks that attended, in the order they ran."""
        return list(dict.fromkeys(r.block for r in self.records))


def _unlike_the_first(shape: torch.Size, first: tuple[int, ...]) -> str:
    """Why an attention call cannot join a rollout begun by the first, or "" when it can."""
    if shape[-2] != shape[-1]:
        return f"attends from {shape[-2]} to {shape[-1]} tokens (class attention or pooling)"
    if shape[-1] != first[-1]:
        return f"attends over {shape[-1]} tokens where an earlier block attended over {first[-1]} (merged or pooled tokens)"
    if shape[0] != first[0]:
        return f"attends in {shape[0]} groups where an earlier block attended in {first[0]} (windowed attention)"
    return ""


def _block_candidates(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, module in model.named_modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)):
            for child_name, child in module.named_children():
                yield f"{name}.{child_name}" if name else child_name, child


def last_block_for(layer: str, blocks: list[str]) -> int:
    """Index of the last block whose attention enters a map asked for at ``layer``: the block
    itself, the block that contains it (``blocks.3.attn``), or the last block it contains
    (``blocks``, ``encoder``)."""
    for i in range(len(blocks) - 1, -1, -1):
        block = blocks[i]
        if block == layer or layer.startswith(block + ".") or not layer or block.startswith(layer + "."):
            return i
    raise LayerscopeError(
        f"layer {layer!r} runs no attention; name a transformer block (one of "
        f"{_span(blocks)}) or an attention module inside one"
    )


def _span(blocks: list[str]) -> str:
    return ", ".join(blocks) if len(blocks) <= 3 else f"{blocks[0]} … {blocks[-1]}"


def check_global(records: list[AttentionRecord], tokens: int, images: int) -> None:
    """The maps need each block to attend over all ``tokens`` of each image (not windows)."""
    if not records:
        raise LayerscopeError(f"no attention ran in this model's forward pass; these methods apply to {APPLIES_TO}")
    for record in records:
        n, _, rows, cols = record.shape
        if n != images or rows != tokens or cols != tokens:
            raise LayerscopeError(
                f"{record.block or 'the model'} attends over {cols} of {tokens} tokens in {n} groups for "
                f"{images} image(s) (windowed or pooled attention); these methods apply to {APPLIES_TO}"
            )


# --- the three reductions: per block, one row of T numbers per image -----------------------


def fuse_heads(probs: Tensor, options: RolloutOptions) -> Tensor:
    """``N×H×T×T`` → ``N×T×T``: heads fused, the smallest entries discarded, ``0.5·A + 0.5·I``,
    rows renormalised."""
    fused = {"mean": probs.mean(dim=1), "max": probs.amax(dim=1), "min": probs.amin(dim=1)}[options.head_fusion]
    if options.discard_ratio > 0:
        fused = _discard_smallest(fused, options.discard_ratio)
    eye = torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
    mixed = 0.5 * fused + 0.5 * eye
    return mixed / mixed.sum(dim=-1, keepdim=True)


def _discard_smallest(fused: Tensor, ratio: float) -> Tensor:
    """Per row, the ``ratio`` smallest attentions to tokens other than the row's own set to zero
    (the diagonal is kept: the identity added next stands for the residual path anyway)."""
    t = fused.shape[-1]
    drop = int(round((t - 1) * ratio))
    if drop == 0:
        return fused
    eye = torch.eye(t, dtype=torch.bool, device=fused.device)
    ranked = fused.masked_fill(eye, float("inf"))
    smallest = ranked.topk(drop, dim=-1, largest=False).indices
    return fused.scatter(-1, smallest, 0.0)


@dataclass
class TokenRows:
    """What a map needs of an ``N×T×T`` relevance matrix: the class token's row and the mean row
    (for models without a class token), ``N×T`` each; the matrix itself is not kept."""

    first: Tensor
    mean: Tensor

    @classmethod
    def of(cls, matrix: Tensor) -> TokenRows:
        return cls(matrix[:, 0].clone(), matrix.mean(dim=1))

    def patches(self, prefix: int) -> Tensor:
        """The class token's row over the patch tokens (``N×(T-prefix)``); without a class
        token, the mean of the patch tokens' rows (what a mean-pooled head reads)."""
        return self.first[:, prefix:] if prefix > 0 else self.mean


class Rollout:
    """Attention rollout (Abnar & Zuidema 2020), one block at a time: ``R_l = Â_l·R_{l-1}``
    from the first block, only the running ``N×T×T`` product kept."""

    def __init__(self, options: RolloutOptions) -> None:
        self.options = options
        self.rows: list[TokenRows] = []
        self._product: Tensor | None = None

    def add(self, probs: Tensor) -> None:
        mixed = fuse_heads(probs.detach().float(), self.options)
        self._product = mixed if self._product is None else mixed @ self._product
        self.rows.append(TokenRows.of(self._product))


class GradientRollout:
    """Chefer et al. (ICCV 2021), one block at a time: ``R = I``; per block
    ``Ā = E_h[(∇A ⊙ A)⁺]``, ``R ← R + Ā·R``."""

    def __init__(self) -> None:
        self.rows: list[TokenRows] = []
        self._product: Tensor | None = None

    def add(self, probs: Tensor, grad: Tensor) -> None:
        weighted = (grad.float() * probs.detach().float()).clamp_min(0).mean(dim=1)
        if self._product is None:
            self._product = torch.eye(weighted.shape[-1], dtype=weighted.dtype, device=weighted.device)
        self._product = self._product + weighted @ self._product
        self.rows.append(TokenRows.of(self._product))


def legrad_vector(grad: Tensor) -> Tensor:
    """LeGrad's per-block relevance: ``∂s_l/∂A_l``, ReLU, averaged over heads and queries: ``N×T``."""
    return grad.float().clamp_min(0).mean(dim=(1, 2))


# --- LeGrad's per-block scores: the model's own final norm and head ------------------------


TokenHead = Callable[[Tensor], Tensor]


def token_head(model: nn.Module) -> TokenHead:
    """Class scores from any block's tokens (``N×T×C``), as LeGrad defines them: tokens
    averaged, then the model's final norm and classification head (Bousselham et al. 2024;
    their reference code and torchcam average the tokens too)."""
    for probe in (_torchvision_head, _timm_head, _hf_head):
        head = probe(model)
        if head is not None:
            return head
    raise LayerscopeError(
        f"legrad needs the model's final norm and classification head; it knows torchvision's "
        f"VisionTransformer, timm's ViT family and Hugging Face's *ForImageClassification, not "
        f"{type(model).__name__} (rollout and gradrollout need neither)"
    )


def _torchvision_head(model: nn.Module) -> TokenHead | None:
    encoder, heads = getattr(model, "encoder", None), getattr(model, "heads", None)
    norm = getattr(encoder, "ln", None)
    if isinstance(norm, nn.Module) and isinstance(heads, nn.Module):
        return lambda tokens: heads(norm(tokens.mean(dim=1)))
    return None


def _timm_head(model: nn.Module) -> TokenHead | None:
    norm, head = getattr(model, "norm", None), getattr(model, "head", None)
    if not (isinstance(norm, nn.Module) and isinstance(head, nn.Module) and hasattr(model, "forward_head")):
        return None
    fc_norm = getattr(model, "fc_norm", None) or nn.Identity()
    head_dist = getattr(model, "head_dist", None)

    def scores(tokens: Tensor) -> Tensor:
        pooled = fc_norm(norm(tokens.mean(dim=1)))
        logits = head(pooled)
        return (logits + head_dist(pooled)) / 2 if isinstance(head_dist, nn.Module) else logits

    return scores


def _hf_head(model: nn.Module) -> TokenHead | None:
    classifier = getattr(model, "classifier", None)
    base = next(
        (getattr(model, n) for n in ("vit", "deit", "beit") if isinstance(getattr(model, n, None), nn.Module)), None
    )
    norm = getattr(base, "layernorm", None)
    width = getattr(norm, "normalized_shape", (None,))[-1]
    if isinstance(classifier, nn.Linear) and isinstance(norm, nn.Module) and classifier.in_features == width:
        return lambda tokens: classifier(norm(tokens.mean(dim=1)))
    return None
