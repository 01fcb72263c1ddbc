"""Small models with known activations, importable as ``activation_models:NAME`` factory specs:
shared by the engine's tests (test_activations.py) and the app's (test_tui_activity.py)."""

from __future__ import annotations

import threading

import torch
from torch import nn


class Log(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)


class DeadAndNaN(nn.Module):
    """Channel 2 of the convolution is zero (weights and bias), so it stays 0 after the ReLU;
    ``log`` of the convolution's raw output is NaN wherever that is negative, -inf where 0."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 1)
        with torch.no_grad():
            self.conv.weight[2] = 0
            self.conv.bias[2] = 0
        self.relu = nn.ReLU()
        self.log = Log()
        self.clip = nn.ReLU6()
        self.squash = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.conv(x)
        self.log(raw)
        return self.squash(self.clip(self.relu(raw) * 10))


class Gated(nn.Module):
    """A convolution and a ReLU; while ``armed`` is set, the forward waits between the two
    until ``release`` is (``waiting`` says it got there): a run stopped half-way."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.relu = nn.ReLU()
        self.armed, self.waiting, self.release = threading.Event(), threading.Event(), threading.Event()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.armed.is_set():
            self.waiting.set()
            self.release.wait(10)
        return self.relu(out)
