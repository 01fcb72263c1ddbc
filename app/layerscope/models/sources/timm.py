"""``timm:NAME`` specs: timm's model zoo, with its pretrained config as the preprocessing."""

from __future__ import annotations

from torch import nn

from layerscope.errors import NotFoundError, UnavailableError
from layerscope.models.build import (
    Download,
    build_on_device,
    call_builder,
    refuse_pretrained_on_meta,
    unknown_model_message,
)
from layerscope.models.loaded import LoadedModel, Preprocess, is_path_weights
from layerscope.models.network import check_reachable
from layerscope.models.preprocessing import timm_preprocess
from layerscope.models.source import LoadRequest
from layerscope.models.weights_cache import (
    read_cached_weights,
    timm_cached_file,
    timm_download_url,
    timm_weights_cached,
)

PREFIX = "timm:"


class TimmSource:
    """``timm:resnet18``; timm itself is an optional extra, imported only for such a spec."""

    name = "timm"
    reads_own_weights = False

    def claims(self, spec: str) -> bool:
        return spec.startswith(PREFIX)

    def auto_weights(self, spec: str) -> str:
        return "DEFAULT" if timm_weights_cached(spec.removeprefix(PREFIX)) else "none"

    def load(self, request: LoadRequest) -> LoadedModel:
        try:
            import timm
        except ImportError as exc:
            raise UnavailableError("timm: specs need timm installed (pip install 'layerscope[timm]')") from exc
        name, dev, kwargs = request.spec.removeprefix(PREFIX), request.device, dict(request.kwargs)
        if not timm.is_model(name):
            raise NotFoundError(unknown_model_message(name, timm.list_models(), "timm.list_models()"))
        pretrained = request.weights.lower() != "none" and not is_path_weights(request.weights)
        if pretrained:
            refuse_pretrained_on_meta(dev)
        cached = timm_cached_file(name) if pretrained else None
        overlay = {}  # a cached file: read by layerscope's reader, handed to timm as a state_dict
        if cached is not None:
            state = dict(read_cached_weights(cached, trust=request.trust))
            overlay = {"pretrained_cfg_overlay": {"source": "", "state_dict": state}}
        download = Download(f"timm weights for {name}", "use --weights none") if pretrained else None
        url = timm_download_url(name) if pretrained and cached is None else None

        def build() -> nn.Module:
            if url is not None:
                check_reachable(url)  # seconds, not a hung download, when there is no network
            return timm.create_model(name, pretrained=pretrained, **kwargs, **overlay)

        model = build_on_device(
            dev,
            lambda: call_builder(build, what=f"timm:{name}", kwargs=kwargs, download=download),
            f"timm:{name}",
            kwargs,
            sized=not pretrained,
        )
        if isinstance(getattr(model, "pretrained_cfg", None), dict):
            model.pretrained_cfg.pop("state_dict", None)  # the weights are in the model now; free the copy
        return LoadedModel(
            model=model,
            spec=request.spec,
            source=self.name,
            weights=f"timm pretrained ({name})" if pretrained else "none",
            pretrained=pretrained,
            device=dev,
            preprocess=preprocess_from_timm(model),
            files=(cached,) if cached else (),
        )


def preprocess_from_timm(model: nn.Module) -> Preprocess:
    """timm's own eval transform (``resolve_data_config`` + ``create_transform``) read as numbers,
    so the pixels are the ones timm gives (``layerscope.models.preprocessing.timm_preprocess``)."""
    return timm_preprocess(model)
