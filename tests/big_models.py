"""Big synthetic models for the app's scale tests and benchmark (``big_models:NAME`` specs)."""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    """Ten modules a block (itself included): a tiny pre-norm MLP with a gated branch."""

    def __init__(self, dim: int = 2) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, dim)
        self.act = nn.GELU()
        self.down = nn.Linear(dim, dim)
        self.gate = nn.Sequential(nn.Linear(dim, dim), nn.Sigmoid())
        self.drop = nn.Dropout(0.0)
        self.scale = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(self.act(self.up(self.norm(x))))
        return x + self.scale(self.drop(h * self.gate(x)))


class Stack(nn.Module):
    def __init__(self, blocks: int, dim: int = 2) -> None:
        super().__init__()
        self.stem = nn.Linear(dim, dim)
        self.blocks = nn.Sequential(*(Block(dim) for _ in range(blocks)))
        self.head = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def hundred_thousand() -> Stack:
    """10,000 blocks of 10 modules: 100,005 modules in all."""
    return Stack(10_000)
