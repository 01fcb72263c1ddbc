"""Ground truth for transformer maps: a synthetic task whose answer sits in one known place.

No trained ViT can be downloaded here, so the benchmark (``benchmarks/bench_vit_truth.py``)
and its tests make one. Each 32×32 RGB image has a noisy background, one planted *object*
and a few *distractors*. The object is one of four 7×7 shapes painted in one of four
*class colours* (red, green, blue, yellow); its colour is the class. Distractors are the
same four shapes painted in colours no class has (white, black, cyan, magenta), placed
anywhere but on the object's box. So shape decides nothing, and the only pixels that say
which class the image is are the object's: a model that classifies well has to look there,
and the object's box (``masks``) is where an honest map should point.

A small ViT (patch 4 → an 8×8 grid and a class token; depth 4, width 64, 4 heads) learns it
in seconds on one CPU thread with fixed seeds, as timm's ``VisionTransformer`` or
torchvision's. ``trained_vit`` caches the trained model per process (in memory only), so
tests and the benchmark train once.

The scoring functions are method-independent: ``pointing_game`` (is the map's peak inside
the mask), ``mass_inside`` (the share of the map's mass inside it), ``wilson_interval`` for
the pointing game's proportion and ``bootstrap_interval`` for the mean mass.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGE_SIZE = 32
PATCH = 4
OBJECT = 7  # side of the object's box and of every distractor's, in pixels
DISTRACTORS = 3
CLASS_NAMES = ("red", "green", "blue", "yellow")
CLASS_COLOURS = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.1], [0.15, 0.25, 0.95], [0.9, 0.85, 0.1]])
DISTRACTOR_COLOURS = torch.tensor([[0.95, 0.95, 0.95], [0.05, 0.05, 0.05], [0.1, 0.85, 0.85], [0.85, 0.1, 0.85]])
DEPTH, WIDTH, HEADS, MLP = 4, 64, 4, 128
TRAIN_IMAGES, EPOCHS, BATCH, LR = 3072, 2, 64, 2e-3
Kind = Literal["timm", "torchvision"]
KINDS: tuple[Kind, ...] = ("timm", "torchvision")


def _shapes() -> Tensor:
    """The four 7×7 shapes (plus, ring, diamond, cross) as a ``4×7×7`` bool tensor."""
    r = torch.arange(OBJECT) - OBJECT // 2
    y, x = r[:, None], r[None, :]
    plus = (x.abs() <= 1) | (y.abs() <= 1)
    ring = (x.abs() >= 2) | (y.abs() >= 2)
    diamond = (x.abs() + y.abs()) <= 3
    cross = ((x - y).abs() <= 1) | ((x + y).abs() <= 1)
    return torch.stack([plus, ring, diamond, cross])


SHAPES = _shapes()


@dataclass(frozen=True)
class SyntheticSet:
    """``images`` N×3×32×32 in [0, 1]; ``labels`` N (the object's colour); ``masks`` N×32×32
    bool, the object's 7×7 box (as pointing-game data sets give boxes); ``boxes`` N×2, the
    box's top-left (row, column)."""

    images: Tensor
    labels: Tensor
    masks: Tensor
    boxes: Tensor

    def __len__(self) -> int:
        return len(self.labels)


def _overlaps(a: tuple[int, int], b: tuple[int, int], gap: int = 1) -> bool:
    """Do two 7×7 boxes with top-lefts ``a`` and ``b`` touch (within ``gap`` pixels)?"""
    return abs(a[0] - b[0]) < OBJECT + gap and abs(a[1] - b[1]) < OBJECT + gap


def _paint(image: Tensor, shape: Tensor, colour: Tensor, at: tuple[int, int], noise: Tensor) -> None:
    """Paint ``shape`` in ``colour`` (with per-pixel ``noise``) at top-left ``at``, in place."""
    r, c = at
    patch = image[:, r : r + OBJECT, c : c + OBJECT]
    painted = (colour[:, None, None] + noise).clamp(0, 1)
    patch.copy_(torch.where(shape, painted, patch))


def make_dataset(n: int, seed: int) -> SyntheticSet:
    """``n`` images drawn from ``seed`` alone (same seed, same tensors, any machine thread count)."""
    g = torch.Generator().manual_seed(seed)
    images = (0.45 + 0.12 * torch.randn(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)).clamp(0, 1)
    labels = torch.randint(len(CLASS_NAMES), (n,), generator=g)
    span = IMAGE_SIZE - OBJECT + 1
    masks = torch.zeros(n, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool)
    boxes = torch.zeros(n, 2, dtype=torch.long)
    for i in range(n):
        at = (int(torch.randint(span, (1,), generator=g)), int(torch.randint(span, (1,), generator=g)))
        shape = SHAPES[int(torch.randint(len(SHAPES), (1,), generator=g))]
        jitter = 0.06 * torch.randn(3, 1, 1, generator=g)
        _paint(
            images[i],
            shape,
            CLASS_COLOURS[labels[i]] + jitter[:, 0, 0],
            at,
            0.04 * torch.randn(3, OBJECT, OBJECT, generator=g),
        )
        masks[i, at[0] : at[0] + OBJECT, at[1] : at[1] + OBJECT] = True
        boxes[i] = torch.tensor(at)
        placed = [at]
        while len(placed) < 1 + DISTRACTORS:
            spot = (int(torch.randint(span, (1,), generator=g)), int(torch.randint(span, (1,), generator=g)))
            if _overlaps(spot, at):
                continue  # distractors may touch each other, never the object's box
            placed.append(spot)
            shape = SHAPES[int(torch.randint(len(SHAPES), (1,), generator=g))]
            colour = DISTRACTOR_COLOURS[int(torch.randint(len(DISTRACTOR_COLOURS), (1,), generator=g))]
            _paint(
                images[i],
                shape,
                colour + 0.06 * torch.randn(3, generator=g),
                spot,
                0.04 * torch.randn(3, OBJECT, OBJECT, generator=g),
            )
    return SyntheticSet(images, labels, masks, boxes)


def build_vit(kind: Kind, seed: int = 0) -> nn.Module:
    """An untrained small ViT of ``kind``: patch 4 on 32×32 (8×8 grid + class token)."""
    torch.manual_seed(seed)  # both libraries draw their initial weights from the global generator
    if kind == "timm":
        from timm.models.vision_transformer import VisionTransformer as TimmViT

        return TimmViT(
            img_size=IMAGE_SIZE,
            patch_size=PATCH,
            num_classes=len(CLASS_NAMES),
            embed_dim=WIDTH,
            depth=DEPTH,
            num_heads=HEADS,
            mlp_ratio=MLP / WIDTH,
        )
    if kind == "torchvision":
        from torchvision.models.vision_transformer import VisionTransformer as TorchvisionViT

        return TorchvisionViT(
            image_size=IMAGE_SIZE,
            patch_size=PATCH,
            num_layers=DEPTH,
            num_heads=HEADS,
            hidden_dim=WIDTH,
            mlp_dim=MLP,
            num_classes=len(CLASS_NAMES),
        )
    raise ValueError(f"unknown ViT kind {kind!r}; choose one of {KINDS}")


def cam_layer(kind: Kind, block: int = DEPTH - 1) -> str:
    """The layer the CAM methods explain for ``kind``: block ``block``'s first norm, whose
    tokens layerscope reshapes into the 8×8 grid (what ``suggest_target_layer`` picks for the
    last block)."""
    if kind == "timm":
        return f"blocks.{block}.norm1"
    return f"encoder.layers.encoder_layer_{block}.ln_1"


def block_layer(kind: Kind, block: int = DEPTH - 1) -> str:
    """The transformer block ``block`` itself (the layer a native attention method names)."""
    return f"blocks.{block}" if kind == "timm" else f"encoder.layers.encoder_layer_{block}"


@dataclass(frozen=True)
class TrainedViT:
    """A trained model in eval mode, its held-out accuracy and the training's wall seconds."""

    kind: Kind
    model: nn.Module
    accuracy: float
    seconds: float
    seed: int


def accuracy(model: nn.Module, data: SyntheticSet, batch: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``data`` (no gradients)."""
    model.eval()
    with torch.no_grad():
        right = sum(
            int((model(data.images[i : i + batch]).argmax(1) == data.labels[i : i + batch]).sum())
            for i in range(0, len(data), batch)
        )
    return right / len(data)


HELD_OUT_SEED = 10_000  # the held-out images never share a seed with training data


def train_vit(
    kind: Kind, seed: int = 0, *, images: int = TRAIN_IMAGES, epochs: int = EPOCHS, evaluate: bool = True
) -> TrainedViT:
    """Train a fresh ViT of ``kind`` on ``images`` synthetic images for ``epochs`` epochs
    (AdamW, a one-cycle cosine schedule, batch 64); deterministic for one ``seed`` on one
    thread. The accuracy is measured on 1,000 held-out images (seed ``HELD_OUT_SEED``); NaN
    when ``evaluate`` is false (a test of the training alone need not pay for it)."""
    start = time.perf_counter()
    data = make_dataset(images, seed)
    model = build_vit(kind, seed)
    g = torch.Generator().manual_seed(seed + 1)
    steps = epochs * math.ceil(images / BATCH)
    optimiser = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=LR, total_steps=steps, pct_start=0.15)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(images, generator=g)
        for i in range(0, images, BATCH):
            pick = order[i : i + BATCH]
            loss = F.cross_entropy(model(data.images[pick]), data.labels[pick])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()
    seconds = time.perf_counter() - start
    return TrainedViT(kind, model, accuracy(model, held_out(1000)) if evaluate else math.nan, seconds, seed)


@functools.cache
def held_out(n: int) -> SyntheticSet:
    """``n`` held-out images (seed ``HELD_OUT_SEED``), made once per process."""
    return make_dataset(n, HELD_OUT_SEED)


@functools.cache
def trained_vit(kind: Kind, seed: int = 0) -> TrainedViT:
    """``train_vit(kind, seed)``, trained once per process and kept in memory (nothing on disk).
    Callers must not train or modify the returned model further."""
    return train_vit(kind, seed)


# ---- scoring: method-independent ------------------------------------------------------------


def _flat(maps: Tensor) -> Tensor:
    """Per map: True when it is constant (no peak, no evidence) — e.g. an all-zero map."""
    flat = maps.flatten(-2)
    return flat.amax(-1) <= flat.amin(-1)


def pointing_game(maps: Tensor, masks: Tensor) -> Tensor:
    """Per map (N×H×W, or one H×W), True when its peak (first maximum in row-major order)
    lies inside the mask. A constant map has no peak and counts as a miss, so a method cannot
    score by returning nothing (Zhang et al., "Top-down neural attention by excitation
    backprop", ECCV 2016; here without their 15-pixel tolerance, which is half of a 32-pixel
    image)."""
    single = maps.dim() == 2
    maps, masks = (maps[None], masks[None]) if single else (maps, masks)
    peaks = maps.flatten(1).argmax(1)
    hit = masks.flatten(1).gather(1, peaks[:, None])[:, 0] & ~_flat(maps)
    return hit[0] if single else hit


def mass_inside(maps: Tensor, masks: Tensor) -> Tensor:
    """Per map, the share of its (non-negative) mass inside the mask: Σ map·mask / Σ map.
    A map of zeros has no mass and scores 0. A uniform map scores the mask's area fraction,
    the baseline any method has to beat."""
    single = maps.dim() == 2
    maps, masks = (maps[None], masks[None]) if single else (maps, masks)
    maps = maps.clamp_min(0).double()
    total = maps.flatten(1).sum(1)
    inside = (maps * masks).flatten(1).sum(1)
    share = torch.where(total > 0, inside / total.clamp_min(1e-300), torch.zeros_like(total))
    return share[0] if single else share


def area_fraction(masks: Tensor) -> Tensor:
    """Per mask, the share of the image it covers: a uniform map's mass inside, and a random
    peak's chance of landing inside (the baseline of both scores)."""
    return masks.flatten(-2).double().mean(-1)


def wilson_interval(hits: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% for the default ``z``): unlike the
    normal approximation it stays inside [0, 1] and is sound near 0 and 1, where good
    methods' pointing games sit."""
    if n <= 0:
        raise ValueError("an interval needs at least one trial")
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(
    values: Tensor, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (the mass inside is a bounded
    continuous score, not a proportion, so Wilson does not apply); seeded, so reruns agree."""
    values = values.double().flatten()
    if len(values) == 0:
        raise ValueError("an interval needs at least one value")
    g = torch.Generator().manual_seed(seed)
    means = values[torch.randint(len(values), (resamples, len(values)), generator=g)].mean(1)
    tail = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return float(low), float(high)
