"""Tiny hand-built models for the CAM tests: small enough that every figure can be
recomputed by hand, and fast enough to run a thousand times."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """conv → (in-place) ReLU → global average pool → linear: dS/dA is W[k]/(h·w), known exactly."""

    def __init__(self, channels: int = 4, classes: int = 3, inplace: bool = True, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.relu = nn.ReLU(inplace=inplace)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


def tiny_input(size: int = 8, batch: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


class DictNet(nn.Module):
    """A model whose output is a dict: a CAM needs a target callable to know which score."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.conv(x).mean((2, 3))}


class _PairLayer(nn.Module):
    """A conv that also returns a count, as some blocks return (features, size)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        return self.conv(x), 7


class PairNet(nn.Module):
    """``TinyNet`` with its conv behind a layer returning ``(tensor, int)``: same maps, other output type."""

    def __init__(self) -> None:
        super().__init__()
        tiny = TinyNet(inplace=False)
        self.block, self.pool, self.fc = _PairLayer(tiny.conv), tiny.pool, tiny.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, count = self.block(x)
        assert count == 7
        return self.fc(self.pool(features.relu()).flatten(1))


class _Budget(nn.Module):
    """Raises an out-of-memory error for batches above ``rows``: torch's, as a full GPU would;
    with ``rows=0`` the CPU allocator's plain RuntimeError."""

    def __init__(self, rows: int) -> None:
        super().__init__()
        self.rows, self.calls = rows, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        if x.shape[0] > self.rows and self.rows > 0:
            raise torch.OutOfMemoryError(f"tried to allocate {x.shape[0]} rows")
        if x.shape[0] > self.rows:  # what the CPU allocator raises: a plain RuntimeError
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return x


class TightNet(TinyNet):
    """``TinyNet`` whose layers after the conv fit at most ``rows`` images at once."""

    def __init__(self, rows: int = 2) -> None:
        super().__init__(inplace=False)
        self.budget = _Budget(rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.budget(self.conv(x)))).flatten(1))


class DeadNet(TinyNet):
    """``TinyNet`` whose scores ignore the conv (multiplied by zero): every gradient map is all zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1) * 0)


class FlatNet(TinyNet):
    """``TinyNet`` with 8 channels, hooked after its ReLU (``relu``), where channels 5 and 6 are
    dead (all zero), channel 7 is the constant 0.7 and channel 4 repeats channel 3: five
    distinct Score-CAM masks for eight channels (the three flat ones are all the zero mask)."""

    def __init__(self) -> None:
        super().__init__(channels=8, inplace=False)
        with torch.no_grad():
            self.conv.weight[5:8] = 0
            self.conv.bias[5:8] = torch.tensor([-1.0, -0.5, 0.7])
            self.conv.weight[4] = self.conv.weight[3]
            self.conv.bias[4] = self.conv.bias[3]


class ViewNet(TinyNet):
    """``TinyNet`` plus the mean of its input taken with ``view``, which a channels-last input refuses."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + x.view(x.shape[0], -1).mean(dim=1, keepdim=True)


class NormNet(TinyNet):
    """``TinyNet`` with a batch norm after its conv (running statistics far from 0 and 1), hooked at
    ``relu``; ``branchy`` adds a branch on the input's values, which ``torch.fx`` cannot trace."""

    def __init__(self, branchy: bool = False) -> None:
        super().__init__(channels=6, inplace=False)
        self.norm = nn.BatchNorm2d(6)
        self.branchy = branchy
        with torch.no_grad():
            self.norm.running_mean.copy_(torch.linspace(-0.5, 0.5, 6))
            self.norm.running_var.copy_(torch.linspace(0.3, 2.0, 6))
            self.norm.weight.copy_(torch.linspace(1.5, 0.5, 6))
            self.norm.bias.copy_(torch.linspace(-0.2, 0.3, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.relu(self.norm(self.conv(x)))
        if self.branchy and bool(x.sum() > 1e9):
            features = features * 2
        return self.fc(self.pool(features).flatten(1))
