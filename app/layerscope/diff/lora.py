"""A PEFT LoRA adapter folder as the B side of a diff: each adapted weight becomes A + ΔW.

PEFT saves ``lora_A`` (r × in) and ``lora_B`` (out × r) per adapted module; merging adds
ΔW = scale · B·A with scale = lora_alpha / r (lora_alpha / √r with ``use_rslora``), r
being the module's own rank (``rank_pattern``) and alpha its own (``alpha_pattern``).
Embeddings store the pair transposed (ΔW = scale · (B·A)ᵀ), convolutions keep their
kernel in A and a 1×1 B, and ``fan_in_fan_out`` layers (GPT-2's Conv1D) transpose ΔW.
ΔW is formed in float64, a block of rows at a time, so a large embedding's update is
never held whole. Anything else the adapter stores (``modules_to_save``, trained biases)
replaces the base tensor of the same name.

Reading an adapter runs no code: the config is JSON, the weights safetensors, or a
pickle read with ``weights_only`` (full unpickling only with ``--trust``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from layerscope.diff.patterns import checked, fullmatches
from layerscope.diff.records import LoraReport
from layerscope.diff.sources import open_file
from layerscope.errors import LayerscopeError
from layerscope.io.files import exists
from layerscope.models.sources.hf_folder import read_json

CONFIG = "adapter_config.json"
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
PREFIX = "base_model.model."
PARTS = {  # the suffix PEFT saves → (which factor, is it an embedding's)
    "lora_A.weight": ("A", False),
    "lora_B.weight": ("B", False),
    "lora_embedding_A": ("A", True),
    "lora_embedding_B": ("B", True),
}
BLOCK = 1 << 20  # elements of ΔW formed at once: 8 MiB of float64


def is_adapter_folder(path: Path) -> bool:
    return path.is_dir() and exists(path / CONFIG)


@dataclass(frozen=True, slots=True)
class Update:
    """ΔW = scale · left @ right, read row-major as the base weight ``key`` lays out its elements."""

    module: str
    key: str
    left: torch.Tensor  # rows × r
    right: torch.Tensor  # r × columns
    scale: float

    @property
    def numel(self) -> int:
        return self.left.shape[0] * self.right.shape[1]

    def slices(self) -> Iterator[torch.Tensor]:
        """ΔW, flattened, a block of whole rows at a time."""
        left, right = self.left.to(torch.float64), self.right.to(torch.float64)
        rows = max(1, BLOCK // max(1, right.shape[1]))
        for start in range(0, left.shape[0], rows):
            yield (left[start : start + rows] @ right).mul_(self.scale).reshape(-1)


@dataclass(frozen=True, slots=True)
class Adapter:
    """What merging the adapter would do: low-rank updates and whole replacements, by base key."""

    updates: dict[str, Update]
    replacements: dict[str, torch.Tensor]
    report: LoraReport


def read_adapter(path: Path, label: str, base_keys: dict[str, str], *, trust: bool) -> Adapter:
    """The adapter in ``path`` fitted to the base's keys (``base_keys``: every name a base
    tensor answers to, its own and the model's renamed spelling → its own)."""
    config = adapter_config(path, label)
    tensors = adapter_tensors(path, label, trust=trust)
    factors: dict[str, dict[str, Any]] = {}
    replacements: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        name = key.removeprefix(PREFIX)
        part = next((p for p in PARTS if name.endswith("." + p)), None)
        if part is not None:
            module = name[: -len(part) - 1]
            factors.setdefault(module, {})[PARTS[part][0]] = tensor
            factors[module]["embedding"] = PARTS[part][1]
        elif name.endswith(".lora_B.bias"):
            factors.setdefault(name.removesuffix(".lora_B.bias"), {})["bias"] = tensor
        else:
            replacements[base_key(name, base_keys, label)] = tensor
    updates: dict[str, Update] = {}
    alphas = pattern_values(config["alpha_pattern"], list(factors), config["lora_alpha"], f"{CONFIG} in {label}")
    for module, parts in factors.items():
        for update in module_updates(module, parts, {**config, "lora_alpha": alphas[module]}, base_keys, label):
            updates[update.key] = update
    touched = [*factors, *(k.rpartition(".")[0] for k in replacements)]
    report = LoraReport(
        folder=label,
        rank=config["r"],
        alpha=float(config["lora_alpha"]),
        use_rslora=config["use_rslora"],
        target_modules=config["targets"],
        adapted=tuple(factors),
        replaced=tuple(replacements),
        unmatched_targets=unmatched(config["targets"], config["targets_regex"], touched, f"{CONFIG} in {label}"),
        rank_pattern={str(k): int(v) for k, v in config["rank_pattern"].items()},
        alpha_pattern={str(k): float(v) for k, v in config["alpha_pattern"].items()},
    )
    return Adapter(updates=updates, replacements=replacements, report=report)


def adapter_config(path: Path, label: str) -> dict[str, Any]:
    """The fields ΔW depends on, checked: a malformed config is one line, not a traceback."""
    raw = read_json(path / CONFIG, "adapter config")
    kind = raw.get("peft_type", "LORA")
    if kind != "LORA":
        raise LayerscopeError(f"{label} is a {kind} adapter; layerscope diff reads LoRA adapters")
    if raw.get("use_dora"):
        raise LayerscopeError(f"{label} is a DoRA adapter (use_dora), whose update is not B·A; not supported")
    r, alpha = raw.get("r"), raw.get("lora_alpha")
    if not (number(r, int) and r >= 1 and number(alpha, (int, float))):
        raise LayerscopeError(f"{CONFIG} in {label}: r must be a positive whole number and lora_alpha a number")
    patterns = {name: raw.get(name) or {} for name in ("rank_pattern", "alpha_pattern")}
    if not all(isinstance(p, dict) for p in patterns.values()):
        raise LayerscopeError(f"{CONFIG} in {label}: rank_pattern and alpha_pattern must be objects")
    for name, table in patterns.items():
        for key in table:
            checked(key, f"{CONFIG} in {label}: {name} key")
    if not all(number(v, (int, float)) for v in patterns["alpha_pattern"].values()):
        raise LayerscopeError(f"{CONFIG} in {label}: alpha_pattern's values must be numbers")
    if not all(number(v, int) and v >= 1 for v in patterns["rank_pattern"].values()):
        raise LayerscopeError(f"{CONFIG} in {label}: rank_pattern's values must be positive whole numbers")
    raw_targets = raw.get("target_modules") or ()
    regex = isinstance(raw_targets, str)  # PEFT: a string is a regular expression, a list holds names
    if not regex and not isinstance(raw_targets, list):
        raise LayerscopeError(f"{CONFIG} in {label}: target_modules must be a string or a list of names")
    targets = (checked(raw_targets, f"{CONFIG} in {label}: target_modules"),) if regex else tuple(map(str, raw_targets))
    return {
        "r": r,
        "lora_alpha": alpha,
        "use_rslora": bool(raw.get("use_rslora")),
        "targets": targets,
        "targets_regex": regex,
        "fan_in_fan_out": bool(raw.get("fan_in_fan_out")),
        **patterns,
    }


def number(value: object, kinds: type | tuple[type, ...]) -> bool:
    """A JSON number of these kinds (``true`` is an int to Python, not to a config)."""
    return isinstance(value, kinds) and not isinstance(value, bool)


def adapter_tensors(path: Path, label: str, *, trust: bool) -> dict[str, torch.Tensor]:
    """Every tensor of the adapter's weights file (adapters are small: read whole)."""
    file = next((path / name for name in WEIGHTS if exists(path / name)), None)
    if file is None:
        raise LayerscopeError(f"{label} has {CONFIG} but no {' or '.join(WEIGHTS)}")
    with open_file(file, f"{label}/{file.name}", trust=trust, what="adapter weights file") as source:
        return {key: source.read(key) for key in source.keys()}


def base_key(name: str, base_keys: dict[str, str], label: str) -> str:
    found = base_keys.get(name)
    if found is None:
        raise LayerscopeError(
            f"{label} does not fit the base model: it holds {name!r}, which the base has no tensor for"
        )
    return found


def module_updates(
    module: str, parts: dict[str, Any], config: dict[str, Any], base_keys: dict[str, str], label: str
) -> list[Update]:
    """The weight update (and the bias update, if ``lora_bias``) of one adapted module."""
    a, b = parts.get("A"), parts.get("B")
    if a is None or b is None:
        raise LayerscopeError(f"{label}: {module} has lora_{'B' if a is None else 'A'} but not its pair")
    rank = a.shape[0]
    scale = float(config["lora_alpha"]) / (math.sqrt(rank) if config["use_rslora"] else rank)
    if parts["embedding"]:
        left, right = a.T, b.T  # A is r × vocabulary, B is dim × r: ΔW = (B·A)ᵀ
    elif config["fan_in_fan_out"]:
        left, right = a.reshape(rank, -1).T, b.reshape(b.shape[0], rank).T
    else:
        if b.dim() > 2 and any(s != 1 for s in b.shape[2:]):
            raise LayerscopeError(f"{label}: {module}'s lora_B has a {tuple(b.shape[2:])} kernel; only 1×1 is merged")
        left, right = b.reshape(b.shape[0], rank), a.reshape(rank, -1)
    key = base_key(f"{module}.weight", base_keys, label)
    updates = [Update(module, key, left, right, scale)]
    if "bias" in parts:  # lora_bias: the merged bias gains scale · lora_B.bias
        bias = parts["bias"].reshape(-1, 1)
        updates.append(Update(module, base_key(f"{module}.bias", base_keys, label), bias, bias.new_ones(1, 1), scale))
    return updates


def pattern_values(patterns: dict[str, Any], modules: list[str], default: Any, where: str) -> dict[str, Any]:
    r"""Each module's value by PEFT's rule: the first pattern that matches the end of its name
    (``re.match(rf"(.*\.)?({pattern})$", module)``), matched with a bound on time."""
    table = fullmatches(list(patterns), modules, f"{where}: alpha_pattern", prefix=r"(.*\.)?") if patterns else []
    values = list(patterns.values())
    return {m: next((values[i] for i, row in enumerate(table) if row[j]), default) for j, m in enumerate(modules)}


def unmatched(targets: tuple[str, ...], regex: bool, modules: list[str], where: str) -> tuple[str, ...]:
    """Entries of ``target_modules`` that name no module the adapter changed (PEFT matches a
    list entry against the end of a name, a string as a regular expression on the whole name)."""
    if regex:
        if targets[0] == "all-linear":
            return ()
        return () if modules and any(fullmatches(targets, modules, f"{where}: target_modules")[0]) else targets
    return tuple(t for t in targets if not any(m == t or m.endswith("." + t) for m in modules))
