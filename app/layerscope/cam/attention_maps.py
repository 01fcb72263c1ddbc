"""One pass of a transformer reduced to the three maps at every block.

``run_attention_pass`` is ``CamPass``'s forward for the transformer-native methods: the
forward records every attention call (``cam.attention.AttentionRecorder``) with the
graph kept from the input on, so ``∂y/∂A`` is the total derivative through every later
block, as Chefer et al. take it; then one ``autograd.grad`` call gives gradient rollout's
gradients for all blocks, and one short call per block gives LeGrad's (block ``l``'s own
score only reaches back through block ``l``). What stays is ``AttentionMaps``: a few
rows of ``T`` numbers per block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from layerscope.cam.attention import (
    AttentionRecorder,
    GradientRollout,
    Rollout,
    RolloutOptions,
    TokenRows,
    check_global,
    last_block_for,
    legrad_vector,
    token_head,
)
from layerscope.cam.scoring import ResolvedTarget
from layerscope.errors import LayerscopeError


@dataclass
class AttentionMaps:
    """Per attention call (in order), each method's relevance after that call."""

    blocks: list[str]  # the block of each call
    rollout: list[TokenRows]
    gradrollout: list[TokenRows] = field(default_factory=list)
    legrad: list[Tensor] = field(default_factory=list)  # cumulative LeGrad relevance, N×T
    legrad_problem: str | None = None

    def last_call(self, layer: str) -> int:
        """The index of the last attention call that enters a map at ``layer``."""
        order = list(dict.fromkeys(self.blocks))
        last_block = order[last_block_for(layer, order)]
        return max(j for j, b in enumerate(self.blocks) if b == last_block)

    def patches(self, method: str, layer: str, prefix: int) -> Tensor:
        """``method``'s relevance of the patch tokens (``N×(T-prefix)``) after the last block
        whose attention enters a map at ``layer``."""
        i = self.last_call(layer)
        if method == "rollout":
            return self.rollout[i].patches(prefix)
        if method == "gradrollout":
            return self.gradrollout[i].patches(prefix)
        if self.legrad_problem:
            raise LayerscopeError(self.legrad_problem)
        return self.legrad[i][:, prefix:]


def recorder_for(
    model: nn.Module, handles: list, options: RolloutOptions, gradients: bool
) -> tuple[AttentionRecorder, Rollout]:
    """A recorder that folds each call into the rollout as it comes when no gradient is wanted
    (nothing of ``T×T`` outlives its block), and keeps the probabilities in the graph otherwise."""
    rollout = Rollout(options)
    return AttentionRecorder(model, handles, fold=None if gradients else rollout.add), rollout


def reduce_attention(
    recorder: AttentionRecorder,
    rollout: Rollout,
    images: int,
    output: object,
    target: ResolvedTarget | None,
    model: nn.Module,
) -> AttentionMaps:
    """The recorded calls as ``AttentionMaps``; gradients when ``target`` is given."""
    records = recorder.records
    tokens = records[0].shape[-1] if records else 0
    check_global(records, tokens, images)
    maps = AttentionMaps(blocks=[r.block for r in records], rollout=rollout.rows)
    probs = [r.probs for r in records if r.probs is not None]
    if len(probs) != len(records):
        return maps  # folded as they came: rollout only
    for p in probs:
        rollout.add(p)
    if target is None:
        return maps
    grads = _gradients(target.score(output).sum(), probs)
    gradient = GradientRollout()
    for p, g in zip(probs, grads):
        gradient.add(p, g)
    maps.gradrollout = gradient.rows
    try:
        head = token_head(model)
    except LayerscopeError as exc:
        maps.legrad_problem = str(exc)
        return maps
    maps.legrad = _legrad(recorder, head, target)
    return maps


def _gradients(score: Tensor, tensors: list[Tensor]) -> list[Tensor]:
    if not score.requires_grad:  # the output does not depend on the attention: no evidence
        return [torch.zeros_like(t) for t in tensors]
    found = torch.autograd.grad(score, tensors, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g.detach() for t, g in zip(tensors, found)]


def _legrad(recorder: AttentionRecorder, head: Callable[[Tensor], Tensor], target: ResolvedTarget) -> list[Tensor]:
    """Bousselham et al. (2024): per block, ``s_l`` = the target's score from block ``l``'s own
    tokens through the model's final norm and head; relevance ``E_{h,q}[(∂s_l/∂A_l)⁺]`` summed
    over the blocks so far."""
    running: Tensor | None = None
    cumulative = []
    for record in recorder.records:
        assert record.probs is not None
        tokens = recorder.outputs.get(record.block)
        if tokens is None:
            raise LayerscopeError(f"block {record.block!r} does not return N×T×C tokens; legrad needs them")
        grad = _gradients(target.score(head(tokens)).sum(), [record.probs])[0]
        vector = legrad_vector(grad)
        running = vector if running is None else running + vector
        cumulative.append(running)
    return cumulative


@dataclass(frozen=True)
class AttentionInputs:
    """What a transformer-native method reads: the pass's reduced attention, the layer the map
    is asked at, and how many prefix tokens (class, distillation, registers) come first."""

    maps: AttentionMaps
    layer: str
    prefix: int


def rollout(x: AttentionInputs) -> Tensor:
    """Attention rollout: Â_l = ½·fuse_h(A_l) + ½·I with rows renormalised, R = Â_L···Â_1 from the
    first block to the layer's, map = R[class token, patch tokens]. Class-blind.

    Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020.
    https://arxiv.org/abs/2005.00928
    """
    return x.maps.patches("rollout", x.layer, x.prefix)


def gradient_rollout(x: AttentionInputs) -> Tensor:
    """Gradient-weighted rollout: R = I, per block Ā = E_h[(∇A ⊙ A)⁺] with ∇A = ∂y_target/∂A,
    R ← R + Ā·R, map = R[class token, patch tokens].

    Chefer, Gur & Wolf, "Generic Attention-model Explainability for Interpreting Bi-Modal and
    Encoder-Decoder Transformers", ICCV 2021. https://arxiv.org/abs/2103.15679
    """
    return x.maps.patches("gradrollout", x.layer, x.prefix)


def legrad(x: AttentionInputs) -> Tensor:
    """LeGrad: per block l, s_l = head(norm(mean over tokens of z_l))[target], map = Σ_l E_{h,q}[(∂s_l/∂A_l)⁺]
    over the patch keys, from the first block to the layer's.

    Bousselham et al., "LeGrad: An Explainability Method for Vision Transformers via Feature
    Formation Sensitivity", ICCV 2025. https://arxiv.org/abs/2404.03214
    """
    return x.maps.patches("legrad", x.layer, x.prefix)
