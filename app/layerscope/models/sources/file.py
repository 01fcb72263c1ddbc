"""Model files: a state_dict (loaded into ``--arch``), or, only with ``--trust``, a whole
module from a pickle, a TorchScript archive or a torch.export program.

What a file holds is read by ``layerscope.models.checkpoints`` (never by its suffix
alone, and never running its code without ``--trust``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from layerscope.errors import BadArgumentError
from layerscope.io.files import exists, expand
from layerscope.models.checkpoints import extract_state_dict, fit_state_dict, read_model_file
from layerscope.models.loaded import FILE_SUFFIXES, LoadedModel
from layerscope.models.source import LoadRequest


class FileSource:
    """A path: a known suffix, a ``/`` or ``~``, or a name that exists on disk."""

    name = "file"
    reads_own_weights = True

    def claims(self, spec: str) -> bool:
        path = Path(spec)
        return path.suffix.lower() in FILE_SUFFIXES or "/" in spec or spec.startswith("~") or exists(path)

    def auto_weights(self, spec: str) -> str:
        return "none"  # the file holds its own

    def load(self, request: LoadRequest) -> LoadedModel:
        spec, dev = request.spec, request.device
        path = expand(spec, "model file")
        obj = read_model_file(path, trust=request.trust)
        if isinstance(obj, nn.Module):
            return whole_model(obj, spec, path, dev)
        state = extract_state_dict(obj, spec)
        if request.arch is None or request.load_arch is None:
            raise BadArgumentError(
                f"{spec} holds a state_dict ({len(state)} tensors), not a model; "
                "name the architecture to load it into with --arch SPEC (e.g. --arch resnet18)"
            )
        refuse_meta_state_dict(dev)
        loaded = request.load_arch(request.arch)
        fit_state_dict(loaded.model, state, source=spec, target=request.arch)
        loaded.spec, loaded.weights, loaded.pretrained, loaded.source = spec, str(path), True, self.name
        loaded.files = (path, *loaded.files)
        return loaded


def whole_model(model: nn.Module, spec: str, path: Path, dev: torch.device) -> LoadedModel:
    """A module read whole from a file the user trusted: a pickle, TorchScript or torch.export."""
    scripted = isinstance(model, torch.jit.ScriptModule)
    if scripted and dev.type == "meta":
        raise BadArgumentError("TorchScript archives cannot be loaded on the meta device; use --device cpu")
    source = "torchscript" if scripted else "export" if isinstance(model, torch.fx.GraphModule) else "pickle"
    return LoadedModel(
        model=model.to(dev), spec=spec, source=source, weights=str(path), pretrained=True, device=dev, files=(path,)
    )


def refuse_meta_state_dict(dev: torch.device) -> None:
    """A state_dict's values need real memory to be copied into."""
    if dev.type == "meta":
        raise BadArgumentError("a state_dict cannot be loaded on the meta device; use --device cpu")


def apply_weights_file(loaded: LoadedModel, path: Path, *, trust: bool) -> None:
    """``--weights PATH``: a state_dict file fitted into a model another source built."""
    refuse_meta_state_dict(loaded.device)
    state = extract_state_dict(read_model_file(path, trust=trust, what="weights file"), str(path))
    fit_state_dict(loaded.model, state, source=str(path), target=loaded.spec)
    loaded.weights, loaded.pretrained = str(path), True
    loaded.files = (*loaded.files, path)
