"""One photo explained: the pipeline the CLI, the app and notebooks share.

A heatmap only means something on the photo it explains, and the model never sees
that photo: it sees a resized, centre-cropped, normalised copy. ``PhotoExplainer``
keeps both sides of that step together (the photo, the prepared input, the
``Geometry`` between them and the mask of pixels the crop kept), so every map it
returns is also laid back on the photo (``CamResult.on_photo``) and every overlay
leaves the unseen borders as they were.

It also keeps its last pass (``CamPass``): asking again for layers that pass
hooked, with the same target, redraws them without running the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor, nn

from layerscope.cam.attention import RolloutOptions
from layerscope.cam.core import CamPass, CamResult
from layerscope.cam.detection import is_detection_model
from layerscope.cam.layers import LayerRef, resolve_layer
from layerscope.cam.methods import Method, get_method
from layerscope.cam.perturb import Cancel, Progress
from layerscope.cam.reshape import Reshape
from layerscope.cam.scoring import TargetSpec
from layerscope.cam.targets import eligible_layers, family_names, spread, suggest_target_layer
from layerscope.errors import LayerscopeError
from layerscope.io import imaging
from layerscope.models.adapters import text_model_problem
from layerscope.models.loaded import LoadedModel
from layerscope.models.preprocessing import as_preprocess
from layerscope.tree import ModuleTree, build_tree

MAX_FAMILY = 16  # layers in an automatic sweep: enough to see the trend, few enough to read as tiles


class PhotoExplainer:
    """CAMs of one photo through one model: a loaded spec or the caller's own ``nn.Module``.

    Holds ``image`` (RGB, original size), ``input`` (``1×3×H×W`` on the model's device),
    ``geometry`` and ``mask`` (``H×W`` bool over the photo: the pixels the model saw), so
    every map is also laid back on the photo and every overlay leaves the unseen borders alone.

    Args:
        loaded: a ``LoadedModel`` (``layerscope.models.load_model``) or any ``torch.nn.Module``
            (made one by ``LoadedModel.from_module``; the module is used as it is, never moved).
        image: a path or a PIL image.
        preprocess: how the photo becomes the input: a ``Preprocess``, a torchvision ``Compose``
            (``Resize``, ``CenterCrop``, ``ToTensor``, ``Normalize``), a torchvision weights'
            ``transforms()`` or timm's ``create_transform``; None keeps the loaded model's own
            (a plain module: timm's config for a timm model, else ImageNet's 256/224).
        categories: class names, index by index, so targets can be named (a plain module's only source of them).
        reshape: turns a transformer's tokens into a grid (``layerscope.cam.reshape``); None: found per layer.
        tree: the model's module tree, when the caller has built it already.

    Raises:
        LayerscopeError: a text model, a model on the meta device, an unreadable photo or transform (one line).

    Examples:
        >>> import torchvision
        >>> from layerscope.cam import PhotoExplainer
        >>> model = torchvision.models.resnet18()
        >>> tf = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
        >>> explainer = PhotoExplainer(model, "app/layerscope/samples/chelsea.png", preprocess=tf)
        >>> [result] = explainer.maps(["layer4"], "gradcam", target=281)
        >>> tuple(result.heatmap.shape)
        (224, 224)
    """

    def __init__(
        self,
        loaded: LoadedModel | nn.Module,
        image: str | Path | Image.Image,
        *,
        preprocess: Any = None,
        categories: Sequence[str] | None = None,
        reshape: Reshape = None,
        tree: ModuleTree | None = None,
    ) -> None:
        loaded = _as_loaded(loaded, preprocess, categories)
        problem = text_model_problem(loaded.model)
        if problem:
            raise LayerscopeError(problem)
        if loaded.device.type == "meta" and loaded.source == "huggingface":
            raise LayerscopeError(
                f"{loaded.spec} is built on the meta device (a folder without weights, or "
                "--device meta); CAMs need real weights: save them beside config.json"
            )
        if loaded.device.type == "meta":
            raise LayerscopeError("CAMs need real weights and arithmetic; load the model on cpu or cuda, not meta")
        self.loaded = loaded
        self.path = None if isinstance(image, Image.Image) else Path(image)
        self.image = imaging.to_rgb(image) if isinstance(image, Image.Image) else imaging.load_image(image)
        tensor, self.geometry = imaging.preprocess(self.image, loaded.preprocess)
        self.input = tensor.to(loaded.device)
        self.mask = imaging.seen_mask(self.geometry)
        self.reshape = reshape
        self._tree = tree
        self._pass: CamPass | None = None
        self._pass_key: tuple[object, bool, bool] | None = None  # (target, gradients, target resolved)

    @property
    def model(self) -> nn.Module:
        return self.loaded.model

    @property
    def tree(self) -> ModuleTree:
        if self._tree is None:
            self._tree = build_tree(self.model)
        return self._tree

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.input.shape[1:])

    @property
    def detection(self) -> bool:
        return is_detection_model(self.model)

    @property
    def hooked(self) -> tuple[str, ...]:
        """The layers the kept pass captured: ``maps`` on these (same target) runs no model."""
        return self._pass.layers if self._pass is not None else ()

    # --- which layers ---------------------------------------------------------------

    def layer_name(self, layer: LayerRef) -> str:
        """The qualified name of ``layer`` (``"auto"``: the suggested layer); unknown names raise."""
        if layer == "auto":
            return self.suggested_layer()
        return resolve_layer(self.model, layer, self.tree)[0]

    def suggested_layer(self) -> str:
        """The layer to explain by default (the architecture table, else one probe pass)."""
        return suggest_target_layer(self.model, self.tree, self.input_shape)

    def layer_family(self, name: str | None = None) -> list[str]:
        """The sweep family of ``name`` (the suggested layer when None): every layer of its role
        in every block, ``name`` included, at most ``MAX_FAMILY`` spread evenly. A layer alone
        in its role gives the eligible layers up to it instead."""
        name = self.suggested_layer() if name is None else self.layer_name(name)
        family = family_names(self.tree, name)
        if len(family) < 2:
            eligible = [n for n, _ in eligible_layers(self.model, self.input_shape)]
            family = eligible[: eligible.index(name) + 1] if name in eligible else [*eligible, name]
        return spread(family, name, MAX_FAMILY)

    # --- maps -----------------------------------------------------------------------

    def maps(
        self,
        layers: Sequence[LayerRef],
        method: str = "gradcam",
        target: TargetSpec = None,
        *,
        hook: Sequence[LayerRef] = (),
        progress: Progress | None = None,
        cancel: Cancel | None = None,
        batch_size: int | None = None,
        precision: str = "auto",
        rollout: RolloutOptions = RolloutOptions(),
    ) -> list[CamResult]:
        """One map per layer, from one forward and (for gradient methods) one backward.

        Args:
            layers: qualified names, access expressions, modules, or ``"auto"`` (the suggested layer).
            method: a CAM method (``layerscope.cam.METHODS``), as for ``compute_cam``.
            target: a class index or name, a ``BoxTarget`` for detectors; None: the top prediction.
            hook: more layers to capture in the same pass, so that a later call on them, with
                any method and the same target, runs no model.
            progress: ``progress(done, total)`` over the perturbed forwards of Score-CAM and
                Ablation-CAM, all layers together.
            cancel: asked between their batches; true stops them.
            batch_size: perturbed copies per forward, as for ``compute_cam``.
            precision: ``"auto"``, ``"float32"`` or ``"bfloat16"``, as for ``compute_cam``.
            rollout: attention rollout's head fusion and discard ratio, as for ``compute_cam``.

        Returns:
            One ``CamResult`` per distinct layer, its ``on_photo`` the map at the photo's size.

        Raises:
            LayerscopeError: an unknown layer, method or target; a layer with no map (one line).

        Examples:
            >>> [result] = explainer.maps(["auto"], "gradcam")  # doctest: +SKIP
            >>> explainer.overlay(result).save("cam.png")        # doctest: +SKIP
        """
        spec = get_method(method)
        names = list(dict.fromkeys(self.layer_name(layer) for layer in layers))
        extra = [self.layer_name(layer) for layer in hook]
        cam_pass = self._pass_for(names, extra, spec, target, rollout)
        if spec.perturbs:
            found = self._perturbed(
                cam_pass, names, spec, progress, cancel=cancel, batch_size=batch_size, precision=precision
            )
        else:
            found = cam_pass.results(spec.name, names)
        return [replace(r, on_photo=imaging.to_original(r.heatmap, self.geometry)) for r in found]

    def has_pass(self, layers: Sequence[LayerRef], method: str = "gradcam", target: TargetSpec = None) -> bool:
        """Whether ``maps(layers, method, target)`` would reuse the kept pass (no forward)."""
        spec = get_method(method)
        names = [self.layer_name(layer) for layer in layers]
        return self._reusable(names, spec, target)

    def _reusable(
        self, names: Sequence[str], spec: Method, target: TargetSpec, rollout: RolloutOptions = RolloutOptions()
    ) -> bool:
        if self._pass is None or self._pass_key is None:
            return False
        kept_target, gradients, resolved = self._pass_key
        return (
            kept_target == target
            and self._pass.attention == spec.attends
            and (not spec.attends or self._pass.rollout == rollout)
            and all(name in self._pass.layers for name in names)
            and (gradients or not spec.needs_grad)
            and (resolved or not (spec.needs_grad or spec.perturbs))
        )

    def _pass_for(
        self, names: list[str], extra: list[str], spec: Method, target: TargetSpec, rollout: RolloutOptions
    ) -> CamPass:
        if self._reusable(names, spec, target, rollout):
            assert self._pass is not None
            return self._pass
        gradients = spec.needs_grad or bool(extra)  # hooked for later: keep what any method needs
        need_target = gradients or spec.perturbs
        hooked = list(dict.fromkeys([*names, *extra]))
        cam_pass = CamPass(
            self.model,
            self.input,
            hooked,
            target,
            categories=self.loaded.categories,
            reshape=self.reshape,
            gradients=gradients,
            need_target=need_target,
            tree=self.tree,
            attention=spec.attends,
            rollout=rollout,
        )  # built first: a pass that fails (a layer with no map) leaves the kept one usable
        self._pass, self._pass_key = cam_pass, (target, gradients, need_target)
        return cam_pass

    @staticmethod
    def _perturbed(
        cam_pass: CamPass, names: list[str], spec: Method, progress: Progress | None, **options: Any
    ) -> list[CamResult]:
        """Layer after layer, with one progress count over all of them; ``options`` go to each
        ``CamPass.result`` (``cancel``, ``batch_size``, ``precision``)."""
        images = cam_pass.input.shape[0]
        sizes = [images * cam_pass.activations[name].shape[1] for name in names]
        total, done, found = sum(sizes), 0, []
        for name, size in zip(names, sizes):
            report = None if progress is None else (lambda d, _t, base=done: progress(base + d, total))
            found.append(cam_pass.result(name, spec.name, progress=report, **options))
            done += size
        return found

    # --- pictures -------------------------------------------------------------------

    def on_photo(self, result: CamResult) -> Tensor:
        """``result``'s map at the photo's H×W (0 where the crop cut the photo)."""
        if result.on_photo is not None:
            return result.on_photo
        return imaging.to_original(result.heatmap, self.geometry)

    def overlay(self, result: CamResult, colormap: str = "jet", alpha: float = 0.5) -> Image.Image:
        """The photo, at its own size, with the map blended on where the model saw it.

        Args:
            result: a map from ``maps``.
            colormap: ``"jet"``, ``"turbo"``, ``"viridis"`` … (``layerscope.io.imaging.COLORMAPS``).
            alpha: the map's weight in the blend, 0 (photo only) to 1 (map only).

        Returns:
            An RGB PIL image of the photo's size; pixels the crop cut off are the photo's own.
        """
        return imaging.overlay(self.image, self.on_photo(result), colormap, alpha, self.mask)

    def side_by_side(self, result: CamResult, colormap: str = "jet", alpha: float = 0.5) -> Image.Image:
        """Photo | map | overlay in one row, each at the photo's size."""
        return imaging.side_by_side(self.image, self.on_photo(result), colormap, alpha, self.mask)


def _as_loaded(model: LoadedModel | nn.Module, preprocess: Any, categories: Sequence[str] | None) -> LoadedModel:
    """A plain module made a ``LoadedModel``; a loaded one with the caller's preprocessing or names, if given."""
    if not isinstance(model, LoadedModel):
        return LoadedModel.from_module(model, preprocess=preprocess, categories=categories)
    if preprocess is not None:
        model = replace(model, preprocess=as_preprocess(preprocess, model.model))
    return model if categories is None else replace(model, categories=list(categories))
