"""Which pretrained weights are already on this machine: what ``--weights auto`` picks
(each source's ``auto_weights`` asks here).

``auto`` must never download (the default has to work offline and instantly), so it
only looks at the caches torchvision and timm read from: torch hub's
``checkpoints/`` folder and the Hugging Face hub cache. Found: the pretrained
weights; not found: random init, which the app and CLI then flag loudly.

Cached files are read like every other file, by ``checkpoints.read_model_file``: torch hub's
own reader unpickles fully, so a file planted in the cache would run code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from layerscope.errors import BadFileError, with_article
from layerscope.models.checkpoints import read_model_file
from layerscope.models.network import check_reachable

HF_FILENAMES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def cached_torchvision_weights(name: str) -> list[str]:
    """Names of ``name``'s torchvision weights whose file is in torch hub's cache, DEFAULT's first."""
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(name)
    except (ValueError, KeyError):
        return []
    members = sorted(enum, key=lambda w: w is not enum.DEFAULT)
    return [w.name for w in members if hub_checkpoint(w.url).is_file()]


def timm_weights_cached(name: str) -> bool:
    """Whether timm's pretrained file for ``name`` is in the Hugging Face or torch hub cache."""
    cfg = _timm_cfg(name)
    return cfg is not None and _timm_file(cfg) is not None


def cached_hint(spec: str) -> str:
    """The tail of a failed torchvision download's message: which weights load without the network.

    (timm needs no hint: its DEFAULT is the one file ``auto`` would find.)
    """
    cached = cached_torchvision_weights(spec.removeprefix("torchvision:"))
    return f"; cached here, no download needed: --weights {' or '.join(cached)}" if cached else ""


def hub_checkpoint(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps ``url``'s file."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def _hf_cached_file(repo_id: str, filename: str | None) -> Path | None:
    """The cached file timm would read for ``repo_id``: a safetensors file before a pickle."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    names: tuple[str, ...] = (filename,) if filename else HF_FILENAMES
    if filename and not filename.endswith(".safetensors"):
        names = (filename.rsplit(".", 1)[0] + ".safetensors", filename)  # timm's safe alternative first
    found = (try_to_load_from_cache(repo_id, n) for n in names)
    return next((Path(f) for f in found if isinstance(f, str)), None)


def timm_cached_file(name: str) -> Path | None:
    """The file in a local cache that ``timm.create_model(name, pretrained=True)`` would read;
    ``None`` when it would download, or loads its weights its own way (``custom_load``)."""
    cfg = _timm_cfg(name)
    return None if cfg is None or cfg.custom_load else _timm_file(cfg)


def _timm_cfg(name: str) -> Any:
    try:
        import timm.models
    except ImportError:
        return None
    try:
        return timm.models.get_pretrained_cfg(name)
    except (RuntimeError, KeyError, ValueError):
        return None


def timm_download_url(name: str) -> str | None:
    """Where ``timm.create_model(name, pretrained=True)`` would download from: the Hugging Face
    hub for most models, the config's own url for the rest."""
    cfg = _timm_cfg(name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        from huggingface_hub import constants

        return f"{constants.ENDPOINT}/{cfg.hf_hub_id}"
    return cfg.url or None


def _timm_file(cfg: Any) -> Path | None:
    if cfg.hf_hub_id:  # timm reads these from the Hugging Face hub whenever it can, never from the url
        return _hf_cached_file(cfg.hf_hub_id, cfg.hf_hub_filename)
    path = hub_checkpoint(cfg.url) if cfg.url else None
    return path if path is not None and path.is_file() else None


def read_cached_weights(path: Path, *, trust: bool) -> Mapping[str, Any]:
    """A cached weights file through layerscope's one reader: refused in one line (naming
    ``--trust``) when it needs full unpickling, never unpickled by torch hub."""
    state = read_model_file(path, trust=trust, what="cached weights file")
    if not isinstance(state, Mapping):
        raise BadFileError(f"{path} holds {with_article(type(state).__name__)}, not a state_dict of cached weights")
    return state


class SafeWeights:
    """One torchvision weights member whose ``get_state_dict`` reads through
    ``read_cached_weights`` instead of ``torch.hub.load_state_dict_from_url`` (which unpickles
    fully); a missing file is still downloaded, its hash checked as torch hub does.

    Why a stand-in passed as ``weights=`` rather than ``weights=None`` plus our own
    ``load_state_dict``: what a torchvision builder derives from its weights goes well beyond
    ``num_classes``. Detectors build ``FrozenBatchNorm2d`` and freeze backbone layers when
    weights are given and set eps to 0 for ``COCO_V1``; inception and googlenet build and then
    drop their auxiliary heads; ViT, MaxViT and MViT take their input size from the metadata;
    quantized builders their backend. Copying those paths would drift with every torchvision
    release; the builder's own code, given this object, builds exactly what it builds with the
    member. Nothing of torchvision is assigned: the object is local to one load, so another
    thread building a torchvision model meanwhile uses torchvision's own reader.

    It passes the builders' ``Weights.verify`` (an ``isinstance`` check) by reporting the
    member's class as its ``__class__``, as ``unittest.mock``'s ``spec`` does, and compares
    equal to the member (detectors test ``weights == ...COCO_V1``). tests/test_thirdparty.py
    fails loudly if torchvision stops accepting it.
    """

    def __init__(self, member: Any, *, trust: bool) -> None:
        self._member = member
        self._trust = trust

    @property  # type: ignore[misc]  # the point: isinstance(self, type(member)) holds
    def __class__(self) -> type:
        return type(self._member)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._member, name)

    def __eq__(self, other: object) -> bool:
        return self._member == (other._member if type(other) is SafeWeights else other)

    def __hash__(self) -> int:
        return hash(self._member)

    def __repr__(self) -> str:
        return repr(self._member)

    def get_state_dict(self, *args: Any, progress: bool = True, **kwargs: Any) -> Mapping[str, Any]:
        """The member's state dict as layerscope's reader gives it (torch hub's arguments ignored)."""
        path = hub_checkpoint(self._member.url)
        if not path.is_file():
            _download(self._member.url, path, progress)
        return read_cached_weights(path, trust=self._trust)


def _download(url: str, path: Path, progress: bool) -> None:
    import torch.hub

    check_reachable(url)  # seconds, not a hung urlopen, when there is no network
    path.parent.mkdir(parents=True, exist_ok=True)
    match = torch.hub.HASH_REGEX.search(path.name)
    torch.hub.download_url_to_file(url, str(path), match.group(1) if match else None, progress=progress)
