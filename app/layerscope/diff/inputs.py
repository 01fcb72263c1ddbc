"""What the user named as A and B, and which architecture the nodes come from.

A side is a checkpoint file (anything ``--weights`` accepts), a Hugging Face folder
(``hf:`` specs included) or, for B only, a PEFT LoRA adapter folder. The architecture
is ``--arch`` when given, else the one A itself names: a Hugging Face folder's config
(built on the meta device, no weights read) or a whole model read from a trusted file.
Without one, the nodes come from the keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from layerscope.diff.lora import is_adapter_folder
from layerscope.diff.shards import INDEXES, SINGLE, FolderShards
from layerscope.diff.sources import InMemory, StateDictFile, TensorSource, held_label, open_file
from layerscope.errors import LayerscopeError, first_line
from layerscope.io.files import exists, expand
from layerscope.models import load_model
from layerscope.models.sources import hf_folder
from layerscope.tree import ModuleTree, build_tree

Held = str | Mapping[str, torch.Tensor] | nn.Module  # a path or spec, or a state_dict (or module) in memory


def adapter_path(spec: Held) -> Path | None:
    """The folder, when ``spec`` is a PEFT adapter folder."""
    if not isinstance(spec, str) or spec.startswith(hf_folder.PREFIX):
        return None
    path = expand(spec, "checkpoint")
    return path if is_adapter_folder(path) else None


def open_checkpoint(spec: Held, *, trust: bool) -> TensorSource:
    """A reader for one side; an adapter folder here is a mistake (it goes second, as B)."""
    if not isinstance(spec, str):
        return InMemory(spec, held_label(spec))
    if adapter_path(spec) is not None:
        raise LayerscopeError(f"{spec} is a LoRA adapter folder: give its base model first, the adapter second")
    path = expand(spec.removeprefix(hf_folder.PREFIX) if spec.startswith(hf_folder.PREFIX) else spec, "checkpoint")
    if not spec.startswith(hf_folder.PREFIX) and path.is_dir() and is_shard_folder(path):
        # a folder of shards without config.json (a sharded save_file, a stripped upload): its
        # weights diff all the same; the nodes come from --arch or the keys (``architecture``)
        return FolderShards(hf_folder.inspect_folder(path, spec, config_needed=False), spec, trust=trust)
    if spec.startswith(hf_folder.PREFIX) or path.is_dir():
        folder = hf_folder.resolve_folder(spec)
        return FolderShards(hf_folder.inspect_folder(folder, spec), spec, trust=trust)
    return open_file(path, spec, trust=trust)


def is_shard_folder(path: Path) -> bool:
    """A folder without config.json that still says which files are the model: a shard index
    or the standard single file (any other folder keeps ``resolve_folder``'s refusal)."""
    names = (*INDEXES.values(), *SINGLE.values())
    return not exists(path / hf_folder.CONFIG) and any(exists(path / name) for name in names)


def architecture(
    spec: Held, source: TensorSource, arch: str | None, *, trust: bool, kwargs: Mapping[str, Any]
) -> tuple[ModuleTree | None, str | None]:
    """The module tree the nodes follow, and a note when A's own architecture could not be built."""
    if arch is not None:
        return build_tree(load_model(arch, weights="none", device="meta", trust=trust, kwargs=kwargs).model), None
    if isinstance(source, StateDictFile) and isinstance(source.module, nn.Module):
        return build_tree(source.module), None
    if isinstance(source, FolderShards) and not source.config:
        return None, f"nodes from the keys: {spec} has no {hf_folder.CONFIG}; --arch names the architecture"
    if isinstance(source, FolderShards):
        try:
            return build_tree(load_model(str(spec), weights="none", device="meta", trust=trust).model), None
        except LayerscopeError as exc:
            return None, f"nodes from the keys: the folder's architecture cannot be built ({first_line(exc)})"
    return None, None
