"""Small models with known answers, importable as ``sample_models:NAME`` factory specs."""

from __future__ import annotations

import torch
from torch import nn


class TiedLM(nn.Module):
    """A language-model shape whose output head shares the embedding matrix."""

    def __init__(self, vocab: int = 100, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.body = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.embed(ids)))


def tied_lm(vocab: int = 100, dim: int = 16) -> TiedLM:
    return TiedLM(vocab, dim)


class WithState(nn.Module):
    """Frozen and trainable parts, a persistent and a non-persistent buffer, a ModuleDict."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.trainable = nn.Linear(4, 2)
        self.heads = nn.ModuleDict({"cls": nn.Linear(2, 3), "box-reg": nn.Linear(2, 4)})
        self.register_buffer("scale", torch.ones(3))
        self.register_buffer("cache", torch.zeros(5), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads["cls"](self.trainable(self.frozen(x))) * self.scale


def with_state() -> WithState:
    return WithState()


def not_a_module() -> str:
    return "nope"


def deep_chain(levels: int = 120) -> nn.Module:
    """Sequential(Sequential(… Linear …, ReLU), ReLU): 241 modules, ``levels`` deep."""
    model: nn.Module = nn.Linear(2, 2)
    for _ in range(levels):
        model = nn.Sequential(model, nn.ReLU())
    return model


def strided() -> nn.Sequential:
    """Three stride-2 convolutions: a folded run whose output shrinks 16 → 4 on a 32×32 input."""
    return nn.Sequential(*(nn.Conv2d(4, 4, 3, stride=2, padding=1) for _ in range(3)))


class ReluTwice(nn.Module):
    """One ReLU instance at ``features.1`` and ``features.3``."""

    def __init__(self) -> None:
        super().__init__()
        relu = nn.ReLU()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), relu, nn.Conv2d(4, 4, 3), relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def relu_twice() -> ReluTwice:
    return ReluTwice()


class ReadsItsWeights(nn.Module):
    """A builder that reads a value back from a weight it just made: no way to build it on meta."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), 2.0))
        self.layers = nn.Sequential(*(nn.Linear(4, 4) for _ in range(int(self.scale.item()))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) * self.scale


def reads_its_weights() -> ReadsItsWeights:
    return ReadsItsWeights()


class Siamese(nn.Module):
    """Two images through one tower, their embeddings compared."""

    def __init__(self) -> None:
        super().__init__()
        self.tower = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16))
        self.head = nn.Linear(16, 1)

    def forward(self, left: torch.Tensor, right: torch.Tensor, *, scale: torch.Tensor | None = None) -> torch.Tensor:
        out = self.head(torch.abs(self.tower(left) - self.tower(right)))
        return out if scale is None else out * scale


def siamese() -> Siamese:
    return Siamese()
