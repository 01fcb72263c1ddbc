"""Every CAM method as one small function of activations, gradients and, where needed, the model.

Each function returns the weighted map ``N×h×w`` before the ReLU; the caller applies
the ReLU and the per-image min-max scaling, so every method is post-processed the
same way. Definitions follow the papers as pytorch-grad-cam computes them; the one
deliberate difference is EigenCAM's sign (see ``_first_component``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from layerscope.cam.attention_maps import AttentionInputs, gradient_rollout, legrad, rollout
from layerscope.errors import LayerscopeError

EPS = 1e-7


class Perturber(Protocol):
    """What Score-CAM and Ablation-CAM need from the model: scores of perturbed copies."""

    def base_scores(self) -> Tensor:
        """The target score of each unperturbed image (``N``)."""

    def masked_scores(self, activations: Tensor) -> Tensor:
        """Target scores ``N×C`` of the input multiplied by each upsampled, rescaled channel."""

    def ablated_scores(self, channels: int) -> Tensor:
        """Target scores ``N×C`` with each of the layer's channels zeroed in turn."""


@dataclass(frozen=True)
class CamInputs:
    """The layer's activations and gradients as ``N×C×h×w`` grids."""

    activations: Tensor
    gradients: Tensor | None = None
    perturber: Perturber | None = None


@dataclass(frozen=True)
class Method:
    name: str
    compute: Callable[[CamInputs], Tensor] | Callable[[AttentionInputs], Tensor]
    needs_grad: bool
    perturbs: bool
    summary: str
    attends: bool = False  # a transformer-native method: computed from attention (``cam.attention``)

    @property
    def class_blind(self) -> bool:
        """Eigen-CAM reads neither gradients nor scores: its map is the same for every class,
        so nothing may present it as a map "for" one."""
        return not (self.needs_grad or self.perturbs)


def _weighted(weights: Tensor, activations: Tensor) -> Tensor:
    """Σ_k w_k·A_k: per-channel weights ``N×C`` applied to ``N×C×h×w``."""
    return torch.einsum("nc,nchw->nhw", weights, activations)


def gradcam(x: CamInputs) -> Tensor:
    """Grad-CAM: w_k = mean_ij g_k(i,j), map = Σ_k w_k·A_k, with g = ∂score/∂A.

    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
    Localization", ICCV 2017. https://arxiv.org/abs/1610.02391
    """
    return _weighted(_grads(x).mean(dim=(2, 3)), x.activations)


def gradcam_plus_plus(x: CamInputs) -> Tensor:
    """Grad-CAM++: α_k(i,j) = g²/(2g² + Σ_ab A_k(a,b)·g³), w_k = Σ_ij α_k(i,j)·relu(g_k(i,j)),
    map = Σ_k w_k·A_k (the exponential-score form, so g² and g³ are powers of the gradient).

    Chattopadhay et al., "Grad-CAM++: Generalized Gradient-based Visual Explanations for Deep
    Convolutional Networks", WACV 2018. https://arxiv.org/abs/1710.11063
    """
    g, a = _grads(x), x.activations
    g2 = g.pow(2)
    g3 = g2 * g
    denominator = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(g != 0, g2 / (denominator + EPS), torch.zeros_like(g))
    return _weighted((F.relu(g) * alpha).sum(dim=(2, 3)), a)


def hirescam(x: CamInputs) -> Tensor:
    """HiResCAM: map = Σ_k g_k ⊙ A_k, element-wise (Grad-CAM without the spatial averaging,
    so the map shows where the score's gradient and the features agree).

    Draelos & Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of
    convolutional neural networks", 2020. https://arxiv.org/abs/2011.08891
    """
    return (_grads(x) * x.activations).sum(dim=1)


def xgradcam(x: CamInputs) -> Tensor:
    """XGrad-CAM: w_k = Σ_ij g_k(i,j)·A_k(i,j) / (Σ_ij A_k(i,j) + ε), map = Σ_k w_k·A_k.

    Fu et al., "Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of
    CNNs", BMVC 2020. https://arxiv.org/abs/2008.02312
    """
    a = x.activations
    weights = (_grads(x) * a).sum(dim=(2, 3)) / (a.sum(dim=(2, 3)) + EPS)
    return _weighted(weights, a)


def layercam(x: CamInputs) -> Tensor:
    """LayerCAM: map = Σ_k relu(g_k) ⊙ A_k, a weight per position, so shallow layers give
    fine maps too.

    Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for
    Localization", IEEE TIP 2021. https://mftp.mmcheng.net/Papers/21TIP_LayerCAM.pdf
    """
    return (F.relu(_grads(x)) * x.activations).sum(dim=1)


def eigencam(x: CamInputs) -> Tensor:
    """Eigen-CAM: map(i,j) = A(i,j)·v₁, each position's channel vector (mean-centred over
    positions) projected on the first principal direction v₁. No gradients, no class.

    Muhammad & Yeasin, "Eigen-CAM: Class Activation Map using Principal Components",
    IJCNN 2020. https://arxiv.org/abs/2008.00299
    """
    return _first_component(x.activations)


def eigengradcam(x: CamInputs) -> Tensor:
    """EigenGrad-CAM: Eigen-CAM of the gradient-weighted activations g ⊙ A, so the
    component follows the class.

    No paper of its own: the variant pytorch-grad-cam introduced
    (https://github.com/jacobgil/pytorch-grad-cam), on Eigen-CAM (arXiv:2008.00299).
    """
    return _first_component(_grads(x) * x.activations)


def scorecam(x: CamInputs) -> Tensor:
    """Score-CAM: M_k = A_k upsampled to the input and min-max scaled, s_k = score(x ⊙ M_k),
    w = softmax_k(s), map = Σ_k w_k·A_k. One forward per channel, no gradients.

    Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
    Networks", CVPR Workshops 2020. https://arxiv.org/abs/1910.01279
    """
    scores = _perturber(x).masked_scores(x.activations)
    return _weighted(torch.softmax(scores, dim=1), x.activations)


def ablationcam(x: CamInputs) -> Tensor:
    """Ablation-CAM: w_k = (y − y_k) / y, with y the target score and y_k the score with
    channel k of the layer set to zero; map = Σ_k w_k·A_k. One forward per channel.

    Desai & Ramaswamy, "Ablation-CAM: Visual Explanations for Deep Convolutional Network
    via Gradient-free Localization", WACV 2020. https://ieeexplore.ieee.org/document/9093360
    """
    perturber = _perturber(x)
    base = perturber.base_scores()[:, None]
    ablated = perturber.ablated_scores(x.activations.shape[1])
    return _weighted((base - ablated) / (base + EPS), x.activations)


def _grads(x: CamInputs) -> Tensor:
    if x.gradients is None:
        raise LayerscopeError("this method needs gradients, but none were computed")
    return x.gradients


def _perturber(x: CamInputs) -> Perturber:
    if x.perturber is None:
        raise LayerscopeError("this method needs the model to score perturbed inputs")
    return x.perturber


def _first_component(activations: Tensor) -> Tensor:
    """Projection of each position's channel vector on the first principal direction.

    Sign rule: a principal direction's sign is arbitrary (an SVD may return v or -v), and the
    ReLU that follows would keep the background for one of the two. We take the sign whose
    map covaries positively with each position's mean activation over channels (of the
    matrix decomposed: A for Eigen-CAM, g⊙A for EigenGrad-CAM), so where the layer fires
    most is hot, for every input.
    The top direction comes from the smaller Gram matrix (``hw×hw`` or ``C×C``), which
    is much cheaper than a full SVD of a ``hw×C`` matrix.
    """
    n, c, h, w = activations.shape
    maps = []
    for sample in activations.reshape(n, c, h * w):
        matrix = sample.T.double()  # positions × channels
        centred = matrix - matrix.mean(dim=0, keepdim=True)
        if centred.shape[0] <= centred.shape[1]:
            values, vectors = torch.linalg.eigh(centred @ centred.T)
            projection = vectors[:, -1] * values[-1].clamp_min(0).sqrt()  # X·v = σ·u
        else:
            _, vectors = torch.linalg.eigh(centred.T @ centred)
            projection = centred @ vectors[:, -1]
        if torch.dot(projection, matrix.sum(dim=1) - matrix.sum(dim=1).mean()) < 0:
            projection = -projection
        maps.append(projection.reshape(h, w).to(activations.dtype))
    return torch.stack(maps)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("gradcam", gradcam, True, False, "gradient-averaged channel weights"),
        Method("gradcam++", gradcam_plus_plus, True, False, "higher-order gradient weights"),
        Method("hirescam", hirescam, True, False, "element-wise gradient × activation"),
        Method("xgradcam", xgradcam, True, False, "activation-normalised gradient weights"),
        Method("layercam", layercam, True, False, "positive gradients × activation, per position"),
        Method("eigencam", eigencam, False, False, "first principal component, no gradients"),
        Method("eigengradcam", eigengradcam, True, False, "first principal component of gradient × activation"),
        Method("scorecam", scorecam, False, True, "softmax of masked-input scores (one forward per channel)"),
        Method("ablationcam", ablationcam, False, True, "score drop when each channel is zeroed"),
        Method(
            "rollout", rollout, False, False, "attention rollout: attention multiplied through the blocks", attends=True
        ),
        Method(
            "gradrollout",
            gradient_rollout,
            True,
            False,
            "gradient-weighted attention rollout (Chefer et al.)",
            attends=True,
        ),
        Method(
            "legrad", legrad, True, False, "LeGrad: each block's own score's gradient on its attention", attends=True
        ),
    )
}


def get_method(name: str) -> Method:
    """The registered method, accepting ``grad-cam`` / ``GradCAM++`` spellings."""
    key = name.lower().replace("-", "").replace("_", "").replace("plusplus", "++").replace("pp", "++")
    if key in METHODS:
        return METHODS[key]
    raise LayerscopeError(f"unknown CAM method {name!r}; choose one of: {', '.join(METHODS)}")
