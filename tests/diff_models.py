"""Small models and checkpoint pairs with known edits, for the diff tests.

``tiny_resnet`` has ResNet's names (conv1, bn1, layer1…layer4 of two blocks each, fc) at
a few hundred parameters per layer, so a pair of checkpoints costs kilobytes.
``edited_pair`` makes B from A by exactly the edits the diff must find.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class TinyResNet(nn.Module):
    def __init__(self, channels: int = 4, classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        for i in range(1, 5):
            setattr(self, f"layer{i}", nn.Sequential(Block(channels), Block(channels)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(self.pool(x).flatten(1))


def tiny_resnet() -> TinyResNet:
    return TinyResNet()


def trained_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict that looks trained: no all-ones or all-zeros tensors (BN statistics included)."""
    torch.manual_seed(seed)
    state = TinyResNet().state_dict()
    for key, value in state.items():
        if value.is_floating_point():
            state[key] = torch.randn_like(value) * 0.5 + (1.0 if key.endswith("running_var") else 0.0)
        else:
            state[key] = torch.tensor(7)
    state["bn1.running_var"] = state["bn1.running_var"].abs()
    return state


EDITS = {  # key → status the diff must report; every other key is ``same``
    "bn1.running_mean": "changed",  # a batch-norm statistic drifts
    "layer1.0.conv1.weight": "removed",
    "extra.scale": "added",
    "layer2.1.conv2.weight": "reshaped",
    "layer3.0.bn2.weight": "retyped",  # cast to float16
}


def edited_pair(seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A and B: in B only layer4 and fc are fine-tuned, plus one edit of each kind in ``EDITS``."""
    a = trained_state(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    b = {key: value.clone() for key, value in a.items()}
    for key, value in a.items():
        if key.startswith(("layer4.", "fc.")) and value.is_floating_point():
            b[key] = value + 0.01 * torch.randn(value.shape, generator=generator)
    b["layer4.0.bn1.num_batches_tracked"] = torch.tensor(9)
    b["bn1.running_mean"] = a["bn1.running_mean"] + 0.25
    del b["layer1.0.conv1.weight"]
    b["extra.scale"] = torch.ones(2, 3)
    b["layer2.1.conv2.weight"] = torch.randn(4, 4, 1, 1, generator=generator)
    b["layer3.0.bn2.weight"] = a["layer3.0.bn2.weight"].to(torch.float16)
    return a, b
