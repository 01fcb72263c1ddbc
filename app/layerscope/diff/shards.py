"""A Hugging Face folder as one tensor source, read shard by shard.

Which files hold the weights comes from the folder's index
(``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``) when it has one,
else from the standard single file. An index is untrusted input: ``inspect_folder``
(shared with every loader) refuses shard names that are not plain names of regular files
inside the folder (``../x``, ``/dev/zero``); here a shard must also be a weights file of
the folder's kind, and every key the index lists must be in the shard it names. Each
shard is opened by ``layerscope.diff.sources`` with the usual rules (safetensors; pickles
with ``weights_only``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from layerscope.diff.records import TensorInfo
from layerscope.diff.sources import TensorSource, open_file
from layerscope.errors import LayerscopeError
from layerscope.io.files import exists
from layerscope.models.checkpoints import strip_wrapper_prefix
from layerscope.models.sources.hf_folder import HfFolder, read_json

INDEXES = {".safetensors": "model.safetensors.index.json", ".bin": "pytorch_model.bin.index.json"}
SINGLE = {".safetensors": "model.safetensors", ".bin": "pytorch_model.bin"}


class FolderShards(TensorSource):
    """Every shard's keys as one checkpoint; a key is read from the shard that holds it."""

    def __init__(self, folder: HfFolder, label: str, *, trust: bool) -> None:
        self.label = label
        self.config = folder.config  # {} for a folder of shards without config.json
        files, index = shard_files(folder, label)
        self.shards: list[TensorSource] = []
        self.owner: dict[str, TensorSource] = {}
        try:
            for path in files:
                shard = open_file(path, f"{label}/{path.name}", trust=trust, what="weights shard")
                self.shards.append(shard)
                for key in shard.keys():
                    if key in self.owner:
                        first = self.owner[key].label
                        raise LayerscopeError(f"{label}: {key!r} is in two shards ({first}, {path.name})")
                    self.owner[key] = shard
            check_index(index, self.owner, label)
        except BaseException:
            self.close()
            raise

    def keys(self) -> list[str]:
        return list(self.owner)

    def info(self, key: str) -> TensorInfo:
        return self.owner[key].info(key)

    def read(self, key: str) -> torch.Tensor:
        return self.owner[key].read(key)

    def prefetch(self, key: str) -> None:
        self.owner[key].prefetch(key)

    def release(self, key: str, tensor: torch.Tensor) -> None:
        self.owner[key].release(key, tensor)

    def close(self) -> None:
        for shard in self.shards:
            shard.close()


def shard_files(folder: HfFolder, label: str) -> tuple[tuple[Path, ...], dict[str, str] | None]:
    """The weights files to read (safetensors first, as transformers prefers) and the
    index's key → shard map, if the folder has an index."""
    files = folder.safetensors or folder.pickles
    if not files:
        raise LayerscopeError(f"{label} holds no weights (no .safetensors or pytorch_model*.bin file)")
    suffix = files[0].suffix
    by_name = {p.name: p for p in files}
    index_path = folder.path / INDEXES[suffix]
    if exists(index_path):
        index = weight_map(index_path, label)
        unknown = sorted({name for name in index.values() if name not in by_name})
        if unknown:
            raise LayerscopeError(
                f"{index_path.name} in {label} names {unknown[0]!r}, which is not a {suffix} file "
                "in the folder; shards must be files beside the index"
            )
        return tuple(p for p in files if p.name in set(index.values())), index
    if SINGLE[suffix] in by_name:
        return (by_name[SINGLE[suffix]],), None
    if len(files) == 1:
        return files, None
    raise LayerscopeError(
        f"{label} has {len(files)} {suffix} files ({', '.join(sorted(by_name))}) "
        f"and no {INDEXES[suffix]} saying which hold the model"
    )


def weight_map(path: Path, label: str) -> dict[str, str]:
    """The index's ``weight_map``: tensor key → shard file name, both strings."""
    data = read_json(path, "shard index").get("weight_map")
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise LayerscopeError(f"{path.name} in {label} has no weight_map of key → shard file names")
    return data


def check_index(index: dict[str, str] | None, owner: dict[str, TensorSource], label: str) -> None:
    """Each key where the index says it is: a stale index means a broken save."""
    if index is None:
        return
    for key, shard in index.items():
        found = owner.get(strip_wrapper_prefix(key))
        if found is None or not found.label.endswith(f"/{shard}"):
            raise LayerscopeError(f"{label}: the index puts {key!r} in {shard}, which does not hold it")
