"""From whatever a layer returns to the ``N×C×h×w`` grid every CAM method works on.

CNN layers already give ``N×C×h×w``; ViT blocks give ``N×T×C`` tokens with class or
register tokens in front; Swin blocks give channels-last ``N×h×w×C``; an FPN backbone
gives a dict of levels. The layout is decided once per layer from the activation
shapes and then applied unchanged to the gradients, so both always line up.
Hard-coding 14×14 or 7×7 (as other libraries do) breaks on any other input size;
here the grid comes from the token count and the input's aspect ratio.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MAX_GUESSED_PREFIX = 8


@dataclass(frozen=True)
class TokenGrid:
    """A user's override of the inferred layout (``--grid HxW --prefix-tokens N``).

    Any field left ``None`` is still inferred.
    """

    grid: tuple[int, int] | None = None
    prefix_tokens: int | None = None
    channels_last: bool | None = None


Reshape = TokenGrid | Callable[[Tensor], Tensor] | None


@dataclass(frozen=True)
class ModelHints:
    """What the model itself says about its tokens: read once, used for every layer."""

    prefix_tokens: int | None = None
    channels_last: bool = False


@dataclass(frozen=True)
class Layout:
    """How to turn one layer's captured tensors into ``N×C×h×w``.

    ``kind``: ``nchw``, ``nhwc`` (Swin), ``tokens`` (ViT), ``levels`` (FPN dict) or
    ``custom`` (a user callable).
    """

    kind: str
    grid: tuple[int, int]
    channels: int
    prefix: int = 0
    custom: Callable[[Tensor], Tensor] | None = None

    @property
    def eligibility_kind(self) -> str:
        return "spatial" if self.kind in ("nchw", "levels", "custom") else "tokens"

    def describe(self) -> str:
        h, w = self.grid
        if self.kind == "tokens":
            return f"tokens → {h}×{w} grid, {self.channels} channels, {self.prefix} prefix token(s)"
        if self.kind == "nhwc":
            return f"channels-last {h}×{w} grid, {self.channels} channels"
        if self.kind == "levels":
            return f"feature levels combined at {h}×{w}, {self.channels} channels"
        return f"{self.channels}×{h}×{w}"

    def apply(self, tensors: Sequence[Tensor]) -> Tensor:
        """The grid for activations or gradients captured at this layer."""
        if self.kind == "custom":
            assert self.custom is not None
            return self.custom(tensors[0] if len(tensors) == 1 else tensors)  # type: ignore[arg-type]
        if self.kind == "levels":
            return torch.cat(
                [F.interpolate(t, size=self.grid, mode="bilinear", align_corners=False) for t in tensors], dim=1
            )
        t = tensors[0]
        if self.kind == "nhwc":
            return t.permute(0, 3, 1, 2)
        if self.kind == "tokens":
            h, w = self.grid
            return t[:, self.prefix :, :].transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)
        return t

    def ablate(self, tensor: Tensor, channels: Sequence[int]) -> Tensor:
        """``len(channels)`` copies of a one-image output, copy ``i`` with channel ``channels[i]`` zeroed."""
        if self.kind in ("levels", "custom"):
            raise ValueError("ablation needs a single-tensor layer")
        out = tensor.expand(len(channels), *tensor.shape[1:]).clone()
        rows = torch.arange(len(channels), device=tensor.device)
        index = torch.as_tensor(list(channels), device=tensor.device)
        if self.kind == "nchw":
            out[rows, index] = 0
        elif self.kind == "nhwc":
            out[rows, :, :, index] = 0
        else:
            out[rows, self.prefix :, index] = 0
        return out


def model_hints(model: nn.Module) -> ModelHints:
    """timm declares ``num_prefix_tokens`` and ``output_fmt``; torchvision's ViT has a ``class_token``."""
    prefix = getattr(model, "num_prefix_tokens", None)
    if prefix is None and isinstance(getattr(model, "class_token", None), torch.Tensor):
        prefix = 1
    fmt = getattr(model, "output_fmt", None)
    channels_last = str(fmt).endswith("NHWC") or type(model).__name__.startswith("Swin")
    return ModelHints(prefix_tokens=int(prefix) if prefix is not None else None, channels_last=channels_last)


def infer_layout(
    shapes: Sequence[tuple[int, ...]],
    input_hw: tuple[int, int],
    hints: ModelHints = ModelHints(),
    override: Reshape = None,
) -> Layout | str:
    """The layout for a layer whose output tensors have ``shapes``, or why it has none."""
    if callable(override) and not isinstance(override, TokenGrid):
        return Layout("custom", (0, 0), 0, custom=override)
    grid = override if isinstance(override, TokenGrid) else TokenGrid()
    if not shapes:
        return "its output is not a tensor"
    if len(shapes) > 1:
        return _levels_layout(shapes)
    shape = shapes[0]
    if len(shape) == 4:
        return _four_d_layout(shape, input_hw, hints, grid)
    if len(shape) == 3:
        return _token_layout(shape, input_hw, hints, grid)
    dims = "×".join(map(str, shape)) or "scalar"
    return f"its output {dims} has no spatial grid (logits or pooled features)"


def _levels_layout(shapes: Sequence[tuple[int, ...]]) -> Layout | str:
    if any(len(s) != 4 for s in shapes):
        return "it returns several tensors that are not all N×C×h×w feature maps"
    by_area = sorted(shapes, key=lambda s: s[2] * s[3])
    middle = by_area[len(by_area) // 2]  # fine enough to localise, coarse enough to stay cheap
    return Layout("levels", (middle[2], middle[3]), sum(s[1] for s in shapes))


def _four_d_layout(
    shape: tuple[int, ...], input_hw: tuple[int, int], hints: ModelHints, grid: TokenGrid
) -> Layout | str:
    _, a, b, c = shape
    if grid.channels_last is not None:
        last = grid.channels_last
    else:
        first_fits, last_fits = _plausible((b, c), input_hw), _plausible((a, b), input_hw)
        last = last_fits and (hints.channels_last or not first_fits)
    h, w, channels = (a, b, c) if last else (b, c, a)
    if h * w <= 1:
        return f"its output {'×'.join(map(str, shape))} is 1×1 (after pooling)"
    return Layout("nhwc" if last else "nchw", (h, w), channels)


def _token_layout(
    shape: tuple[int, ...], input_hw: tuple[int, int], hints: ModelHints, grid: TokenGrid
) -> Layout | str:
    _, tokens, channels = shape
    if grid.prefix_tokens is not None:
        prefixes = [grid.prefix_tokens]
    elif hints.prefix_tokens is not None:
        prefixes = [hints.prefix_tokens]
    else:
        prefixes = list(range(0, MAX_GUESSED_PREFIX + 1))
    for prefix in prefixes:
        n = tokens - prefix
        if grid.grid is not None:
            if grid.grid[0] * grid.grid[1] == n:
                return Layout("tokens", grid.grid, channels, prefix)
            continue
        found = _factor_grid(n, input_hw)
        if found is not None:
            return Layout("tokens", found, channels, prefix)
    dims = "×".join(map(str, shape))
    if grid.grid is not None:
        return f"its {tokens} tokens ({dims}) do not fill a {grid.grid[0]}×{grid.grid[1]} grid"
    return f"its tokens ({dims}) do not form a grid; give --grid HxW --prefix-tokens N"


def _factor_grid(n: int, input_hw: tuple[int, int]) -> tuple[int, int] | None:
    """The h×w with h·w = n whose aspect ratio is closest to the input's (square for square input)."""
    if n <= 1:
        return None
    ratio = input_hw[0] / input_hw[1]
    best: tuple[float, tuple[int, int]] | None = None
    for h in range(1, n + 1):
        if n % h:
            continue
        w = n // h
        err = abs(math.log((h / w) / ratio))
        if best is None or err < best[0]:
            best = (err, (h, w))
    if best is None or best[0] > math.log(1.5) or min(best[1]) == 1:
        return None
    return best[1]


def _plausible(hw: tuple[int, int], input_hw: tuple[int, int]) -> bool:
    """Could ``hw`` be a downsampled copy of the input? Same aspect ratio (±50 %), not larger."""
    h, w = hw
    if h < 1 or w < 1 or h > input_hw[0] or w > input_hw[1]:
        return False
    return abs(math.log((h / w) / (input_hw[0] / input_hw[1]))) <= math.log(1.5)
