"""The per-batch function: every requested layer's map of every image in a batch, and its evidence.

One forward and one backward for the whole batch (``CamPass`` over N images, every
layer hooked at once), then every map of every image scored in one stream of perturbed
forwards (``cam.metrics.faithfulness_batch``). Each image's numbers are the ones
``layerscope rank`` prints for it alone: the same preprocessing, the same maps, the same
protocol. Both engines (the local ``DataLoader`` loop and Ray's actors) call
``BatchExplainer.explain``; what it returns is plain data, written by the folder's owner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from layerscope.cam import CamPass, get_method, top_predictions
from layerscope.cam.metrics import Faithfulness, faithfulness_batch
from layerscope.cam.reshape import Reshape
from layerscope.folder_report import pictures
from layerscope.folder_report.decode import Decoded, Skip
from layerscope.folder_report.kept import slot_label
from layerscope.models import LoadedModel
from layerscope.tree import ModuleTree, build_tree

PREDICTED, LABEL = "predicted", "label"
ClassChoice = str | int  # PREDICTED, LABEL, or one class index for every image


@dataclass(frozen=True)
class Settings:
    """What each record is computed with; ``access[i]`` is ``layers[i]``'s access expression."""

    layers: tuple[str, ...]
    access: tuple[str, ...]
    method: str = "gradcam"  # one method, or several joined by commas (every one at every layer)
    target: ClassChoice = PREDICTED
    steps: int = 20
    perturb_batch: int = 64  # perturbed copies per forward
    colormap: str = "jet"
    alpha: float = 0.5

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.method.split(","))

    @property
    def slots(self) -> list[tuple[str, str, str, str]]:
        """(method, layer, access expression, label) per map of an image, methods first."""
        return [
            (m, layer, access, slot_label(m, layer, self.methods))
            for m in self.methods
            for layer, access in zip(self.layers, self.access)
        ]


@dataclass
class BatchOutput:
    """One batch's results: ``names`` are all its files (skipped ones too), in order."""

    names: list[str]
    records: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # relative path in the report folder → content


class BatchExplainer:
    """``explain(items)``: the records, skipped files and pictures of one batch."""

    def __init__(
        self, loaded: LoadedModel, settings: Settings, *, reshape: Reshape = None, tree: ModuleTree | None = None
    ) -> None:
        self.loaded, self.settings, self.reshape = loaded, settings, reshape
        self.methods = [get_method(name) for name in settings.methods]
        self.tree = tree or build_tree(loaded.model)

    def explain(self, items: Sequence[Decoded | Skip], within: Callable[[int, int], None] | None = None) -> BatchOutput:
        """The batch's output; ``within(maps scored, maps in the batch)`` as the scoring goes."""
        out = BatchOutput(
            names=[item.file.name for item in items],
            skipped=[item.record() for item in items if isinstance(item, Skip)],
        )
        decoded = [item for item in items if isinstance(item, Decoded)]
        tally = _Tally(len(decoded) * len(self.settings.slots), 2 * self.settings.steps - 1, within)
        for shape in dict.fromkeys(tuple(item.input.shape) for item in decoded):  # one batch per input size
            self._explain([item for item in decoded if tuple(item.input.shape) == shape], out, tally)
        order = {name: i for i, name in enumerate(out.names)}
        out.records.sort(key=lambda r: order[r["image"]])  # stable: layers stay in order
        return out

    def _explain(self, group: list[Decoded], out: BatchOutput, tally: _Tally) -> None:
        s, model = self.settings, self.loaded.model
        x = torch.cat([item.input for item in group]).to(self.loaded.device)
        maps, passes = [], []
        for method in self.methods:  # one forward and backward per method, every layer at once
            cam_pass = CamPass(
                model,
                x,
                s.layers,
                self._target(group),
                categories=self.loaded.categories,
                reshape=self.reshape,
                gradients=method.needs_grad,
                need_target=True,
                tree=self.tree,
                attention=method.attends,
            )
            # float32 Score-CAM scores: a report's records do not yet say which precision scored them,
            # and a report resumed on another machine must not mix precisions
            results = cam_pass.results(method.name, s.layers, batch_size=s.perturb_batch, precision="float32")
            maps += [r.heatmap.reshape(len(group), *x.shape[-2:]) for r in results]
            passes.append(cam_pass)
        heat = torch.stack(maps, dim=1)  # N×(methods·layers)×H×W
        first = passes[0]
        assert first.target is not None and first.target.classes is not None
        classes = [int(k) for k in first.target.classes]
        scores = faithfulness_batch(
            model,
            x,
            [list(row) for row in heat],
            classes,
            s.steps,
            batch_size=s.perturb_batch,
            progress=tally.group(len(group) * heat.shape[1]),
        )
        for i, item in enumerate(group):
            self._image(item, heat[i], classes[i], scores[i], first.scores[i : i + 1], out)

    def _target(self, group: list[Decoded]) -> int | list[int] | None:
        if self.settings.target == PREDICTED:
            return None
        if self.settings.target == LABEL:
            return [int(item.file.label) for item in group]  # type: ignore[arg-type]  # labels checked up front
        return int(self.settings.target)

    def _image(
        self, item: Decoded, heat: Tensor, cls: int, scores: list[Faithfulness], logits: Tensor, out: BatchOutput
    ) -> None:
        s, name = self.settings, item.file.name
        out.files[pictures.thumbnail_path(name)] = pictures.thumbnail(item)
        out.files[pictures.maps_path(name)] = pictures.maps_npy(heat)
        head = self._head(item, cls, logits)
        for (method, layer, access, _), heatmap, score in zip(s.slots, heat, scores):
            path = pictures.overlay_path(name, layer, method if len(s.methods) > 1 else "")
            out.files[path] = pictures.overlay(item, heatmap, s.colormap, s.alpha)
            out.records.append(
                {
                    **head,
                    "method": method,
                    "layer": layer,
                    "access_expression": access,
                    "deletion_auc": _rounded(score.deletion_auc),
                    "insertion_auc": _rounded(score.insertion_auc),
                    "insertion_minus_deletion": _rounded(score.gap),
                    "average_drop": _rounded(score.average_drop),
                    "increased": score.increased,
                    "all_zero": not bool(heatmap.max() > 0),
                    "overlay": path,
                }
            )

    def _head(self, item: Decoded, cls: int, logits: Tensor) -> dict:
        """The fields every layer's record of this image shares."""
        top = top_predictions(logits, self.loaded.categories)
        label = item.file.label
        return {
            "image": item.file.name,
            "label": label,
            "label_name": self._name(label),
            "predicted": top[0].index,
            "predicted_name": top[0].name,
            "correct": None if label is None else top[0].index == label,
            "top5": [{"class": p.index, "name": p.name, "probability": _rounded(p.probability)} for p in top],
            "method": self.settings.method,
            "class": cls,
            "class_name": self._name(cls),
            "width": item.size[0],
            "height": item.size[1],
            "thumbnail": pictures.thumbnail_path(item.file.name),
            "maps": pictures.maps_path(item.file.name),
        }

    def _name(self, index: int | None) -> str | None:
        names = self.loaded.categories
        return names[index] if index is not None and names and 0 <= index < len(names) else None


class _Tally:
    """Maps scored so far in a batch, from the perturbed passes of each input-size group (its
    maps' deletion and insertion passes come map by map, the confidence ones last)."""

    def __init__(self, maps: int, passes_per_map: int, report: Callable[[int, int], None] | None) -> None:
        self.maps, self.per_map, self.report, self.done, self._told = maps, passes_per_map - 1, report, 0, -1

    def group(self, maps: int) -> Callable[[int, int], None] | None:
        if self.report is None:
            return None
        start = self.done
        self.done += maps

        def passes(done: int, total: int) -> None:
            scored = start + (maps if done >= total else min(maps, done // max(1, self.per_map)))
            if scored != self._told:
                self._told = scored
                self.report(scored, self.maps)  # type: ignore[misc]

        return passes


def _rounded(value: float) -> float:
    """Six decimals, as ``rank --json`` prints them."""
    return round(float(value), 6)
