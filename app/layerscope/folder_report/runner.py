"""One folder report from start to finish: the engine object the CLI adapts.

``FolderReport(request)`` checks everything a run could trip over before any work
(the method, the class choice, the layers, the folder and the output folder, with the
command compared to the one already there), then ``run()`` feeds the batches still to
do through an engine (local: a ``DataLoader`` decoding in worker processes; ``ray``: the
same per-batch function on Ray Data), writes each batch as it lands, and finishes with
the summary, the sanity check and the page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from layerscope.cam import PhotoExplainer, get_method, is_detection_model
from layerscope.cam.applies import methods_for
from layerscope.cam.reshape import TokenGrid
from layerscope.cam.scoring import class_index
from layerscope.cam.targets import family_names
from layerscope.errors import LayerscopeError
from layerscope.io.files import exists
from layerscope.folder_report import claims, page, pictures, stats
from layerscope.folder_report.dataset import Folder, discover, folder_path
from layerscope.folder_report.evidence import LABEL, PREDICTED, BatchExplainer, BatchOutput, ClassChoice, Settings
from layerscope.folder_report.kept import is_sanity, maps_bytes
from layerscope.folder_report.sanity_sample import sample, sanity_checks
from layerscope.folder_report.store import PAGE, SANITY, SUMMARY, ReportStore, check_outdir
from layerscope.models import LoadedModel, load_model
from layerscope.parsing import as_int
from layerscope.tree import ModuleTree, build_tree

ENGINES = ("local", "ray")
PERTURB_BATCH = {"cpu": 4}  # measured on the CPU: up to 8 copies cost what 1 does per image, 64 twice as much
PERTURB_BATCH_ACCELERATOR = 64
BATCH = {"cpu": 1}  # on the CPU batching images saves little, and a batch of one keeps every image as it lands
BATCH_ACCELERATOR = 16
CANDIDATES = 5  # --layers auto: the suggested layer and its nearest neighbours in its family
AUTO, AUTO_ALL = "auto", "auto-all"
STEPS = 10  # measured: per-image ins−del at 10 and 20 steps, Spearman 0.997, the same winner on every image


@dataclass(frozen=True)
class ModelArgs:
    """How to load the model: the driver and every Ray actor load it the same way."""

    spec: str = "mobilenet_v2"
    weights: str = "auto"
    device: str = "cpu"
    arch: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    trust: bool = False

    def load(self) -> LoadedModel:
        return load_model(self.spec, weights=self.weights, device=self.device, arch=self.arch, trust=self.trust,
                          kwargs=self.kwargs)

    def files(self) -> list[Path]:
        """The inputs among the model's arguments that are files (never to be overwritten)."""
        return [Path(p) for p in (self.spec, self.weights, self.arch) if p and exists(Path(p))]


@dataclass(frozen=True)
class ReportRequest:
    """What ``layerscope report`` was asked (the CLI's options, spelled as fields).

    ``images``: the folder (class folders give labels); ``out``: the report folder;
    ``layers``: ``"auto"`` (the suggested layer and its neighbours), ``"auto-all"`` (its
    whole family, at most 16) or comma-separated names; ``target``: ``"predicted"``,
    ``"label"`` or a class index or name; ``batch_size``: images per forward and backward
    (None: 1 on the CPU, 16 on a GPU);
    ``method``: one method, a comma list or ``all`` (each method × layer pair a candidate);
    ``perturb_batch``: perturbed copies per forward (None: 4 on the CPU, 64 on a GPU);
    ``limit``: at most this many files, spread over the folder; ``workers``: decoding
    processes (local) or model actors (ray); ``engine``: ``"local"`` or ``"ray"``;
    ``sanity_images``: images for the randomisation check (0: none)."""

    images: str | Path
    out: str | Path
    model: ModelArgs = ModelArgs()
    layers: str = "auto"
    method: str = "gradcam"
    target: str = PREDICTED  # predicted, label, or a class index or name
    steps: int = STEPS
    batch_size: int | None = None  # None: BATCH for the model's device
    perturb_batch: int | None = None  # None: PERTURB_BATCH for the model's device
    limit: int | None = None
    workers: int = 2
    engine: str = "local"
    sanity_images: int = 4
    colormap: str = "jet"
    alpha: float = 0.5
    reshape: TokenGrid | None = None


Progress = Callable[[int, int], None]  # (files done, files in the run)
Within = Callable[[int, int], None]  # (maps scored, maps in the batch in flight)


class FolderReport:
    """A report on ``request.images`` into ``request.out``, ready to ``run()``."""

    def __init__(self, request: ReportRequest, loaded: LoadedModel | None = None) -> None:
        if request.engine not in ENGINES:
            raise LayerscopeError(f"unknown engine {request.engine!r}; choose one of: {', '.join(ENGINES)}")
        self.request = request
        named = method_names(request.method)  # mistakes in the command fail before the model loads
        check_outdir(request.out, folder_path(request.images))
        self.loaded = loaded or request.model.load()
        methods = named or methods_for(self.loaded.model)  # all: every method that applies to the model
        if is_detection_model(self.loaded.model):
            raise LayerscopeError("report scores a classifier's class probabilities; a detector's maps explain "
                                  "boxes: use layerscope cam on its photos instead")
        self.folder: Folder = discover(request.images, self.loaded.categories, request.limit)
        self.tree: ModuleTree = build_tree(self.loaded.model)
        layers = resolve_layers(self.loaded, request.layers, request.reshape, self.tree)
        self.settings = Settings(
            layers=tuple(layers), access=tuple(access_expression(self.tree, name) for name in layers),
            method=",".join(methods), target=self._target(request.target), steps=request.steps,
            perturb_batch=request.perturb_batch or PERTURB_BATCH.get(self.loaded.device.type, PERTURB_BATCH_ACCELERATOR),
            colormap=request.colormap, alpha=request.alpha)
        inputs = [*request.model.files(), *self.loaded.files]  # the model's own: a cache, a folder, a factory
        self.store = ReportStore(request.out, self.identity(), self.folder, inputs=inputs)
        try:
            self.finished = 0  # files written to the folder, by earlier runs and this one (set by run)
            self.batch_size = request.batch_size or BATCH.get(self.loaded.device.type, BATCH_ACCELERATOR)
            self.pending = self.store.pending(self.folder, self.batch_size)
        except BaseException:
            self.store.lock.release()
            raise

    @property
    def notes(self) -> list[str]:
        """What opening the folder found worth a line (records dropped as not this run's)."""
        return self.store.notes

    @property
    def total(self) -> int:
        return len(self.folder.files)

    @property
    def done(self) -> int:
        """Files already accounted for (explained or skipped) before this run's batches."""
        return self.total - sum(len(batch) for batch in self.pending)

    @property
    def forwards_per_image(self) -> int:
        """Model passes one image costs: a forward and backward per method, then per map
        2·(steps − 1) deletion and insertion copies and one for the confidence change, and
        the photo with the blank (the figure the benchmark's floor counts)."""
        s = self.settings
        return len(s.methods) * 2 + len(s.slots) * (2 * s.steps - 1) + 2

    def work(self) -> str:
        """How much is still to do, before any of it: ``12 images × 5 layers × 39 passes + 4 = ...``."""
        s, images = self.settings, self.total - self.done
        per_map = 2 * s.steps - 1
        maps = f"{len(s.layers)} layer{'s' * (len(s.layers) != 1)}" + (f" × {len(s.methods)} methods"
                                                                       if len(s.methods) > 1 else "")
        sanity = f"; the sanity check adds {self.request.sanity_images} images" if self.request.sanity_images else ""
        return (f"{images} image{'s' * (images != 1)} × {maps} × {per_map} passes ({s.steps} steps) + "
                f"{self.forwards_per_image - len(s.slots) * per_map} = {images * self.forwards_per_image:,} model "
                f"passes{sanity}")

    def identity(self) -> dict[str, Any]:
        """Everything that decides a record's value: a run with any of it changed is another report."""
        r, s, grid = self.request, self.settings, self.request.reshape
        return {
            "report": 1, "model": r.model.spec, "weights": self.loaded.weights_label, "arch": r.model.arch,
            "model_args": r.model.kwargs, "images": str(self.folder.root), "limit": r.limit,
            "layers": list(s.layers), "method": s.method, "class": s.target, "steps": s.steps,
            "colormap": s.colormap, "alpha": s.alpha, "sanity_images": r.sanity_images,
            "grid": None if grid is None else list(grid.grid or ()) or None,
            "prefix_tokens": None if grid is None else grid.prefix_tokens,
        }

    def run(self, progress: Progress | None = None, within: Within | None = None) -> dict:
        """Compute the pending batches (each written as it arrives), then the summary and page,
        holding the folder's lock (taken when the report was opened) until the end. ``progress``
        hears of every batch that lands (every image at the CPU's batch of one), ``within`` of
        the maps scored in the batch in flight (local engine): a long batch shows it moves. An
        exception from either (Ctrl-C) leaves every batch written so far for a resume."""
        self.store.lock.acquire()
        try:
            done = self.finished = self.done
            if progress is not None:
                progress(done, self.total)
            for output in self._batches(within):
                self.store.write(output)
                done = self.finished = done + len(output.names)  # kept, whether or not progress hears of it
                if progress is not None:
                    progress(done, self.total)
            return self.finish()
        finally:
            self.store.lock.release()

    def finish(self) -> dict:
        """``summary.json`` and ``index.html`` from the records as written; with several methods
        each (method, layer) pair is a candidate, named ``method@layer`` in every figure."""
        s = self.settings
        records = [{**r, "layer": self.store.shape.slot(r)} for r in self.store.records] if len(s.methods) > 1 \
            else self.store.records
        sanity = self._sanity(records)
        labels = [label for *_, label in s.slots]
        table = stats.layer_table(records, labels, [access for _, _, access, _ in s.slots])
        for row in table if len(s.methods) > 1 else ():
            row["method"] = row["layer"].split("@", 1)[0]
        claims.annotate(table, sanity)
        decision = claims.decide(claims.candidates(table, records))
        rows = {row["layer"]: row for row in table}
        best, leading = rows.get(decision["best"]), rows.get(decision["leading"]) or (table[0] if table and table[0]["n"]
                                                                                    else None)
        counts = stats.accuracy(records)
        summary = {
            "model": self.request.model.spec, "weights": self.loaded.weights_label,
            "images_folder": str(self.folder.root), "method": s.method, "class": s.target, "steps": s.steps,
            "images": counts["images"], "skipped": len(self.store.skipped), "records": len(records),
            "counts": {**counts, "files": self.total, "skipped": len(self.store.skipped),
                       "skipped_by_reason": _by_reason(self.store.skipped)},
            "accuracy": counts["accuracy"], "labels_note": self.folder.note,
            "layers": table, "best_layer": best and best["layer"], "best_access_expression": best and best["access_expression"],
            "leading_layer": leading and leading["layer"], **decision,
            "single_image": stats.disagreement(table),
            "classes": self._classes(records, leading),
            "sanity": sanity,
        }
        self.store.write_text(SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        self.store.write_text(PAGE, page.render(summary, records, self.store.skipped))
        return summary

    @property
    def page_path(self) -> Path:
        return self.store.root / PAGE

    def _batches(self, within: Within | None = None) -> Iterator[BatchOutput]:
        if not self.pending:
            return iter(())
        if self.request.engine == "ray":
            from layerscope.folder_report import ray_engine  # only here: the default engine never imports Ray

            return ray_engine.ray_batches(self.request, self.settings, self.folder, self.pending,
                                          self.loaded.preprocess)
        return local_batches(self.explainer(), self.folder, self.pending, self.loaded, self.request.workers, within)

    def explainer(self) -> BatchExplainer:
        return BatchExplainer(self.loaded, self.settings, reshape=self.request.reshape, tree=self.tree)

    def _target(self, raw: str) -> ClassChoice:
        if raw == PREDICTED:
            return PREDICTED
        if raw == LABEL:
            if not self.folder.labelled:
                why = self.folder.note or f"{self.folder.root} has no class folders"
                raise LayerscopeError(f"--class label needs labelled images: {why}")
            return LABEL
        number = as_int(raw)
        return class_index(raw if number is None else number, self.loaded.categories)

    def _classes(self, records: Sequence[dict], best: dict | None) -> list[dict]:
        rows = stats.class_rows(records)
        if best is None:
            return rows
        labels = [label for *_, label in self.settings.slots]
        layer = labels.index(best["layer"])
        groups = stats.class_groups(records)
        for row in rows:
            size = maps_bytes(len(labels))
            maps = [pictures.read_maps(self.store.read(member["maps"], size))[layer] for member in groups[row["class"]]]
            row["mean_map"] = f"classes/{row['class']}.png"
            self.store.write_bytes(row["mean_map"], pictures.mean_map(maps))
        return rows

    def _sanity(self, records: Sequence[dict]) -> dict:
        """The sanity check on the sample, or its result kept from a run on the same sample."""
        chosen = sample(records, self.request.sanity_images) if self.request.sanity_images else []
        if not chosen:
            return {"images": [], "rho": {}, "class_blind": False, "verdict": "not checked"}
        kept = self.store.read_json(SANITY)
        labels = [label for *_, label in self.settings.slots]
        if is_sanity(kept, [row["image"] for row in chosen], labels):
            return kept["result"]  # type: ignore[index]
        result = sanity_checks(self.loaded, self.folder.root, chosen, self.settings.layers, self.settings.methods,
                               reshape=self.request.reshape, tree=self.tree)
        self.store.write_text(SANITY, json.dumps({"sample": [row["image"] for row in chosen], "result": result},
                                                 ensure_ascii=False) + "\n")
        return result


def local_batches(explainer: BatchExplainer, folder: Folder, pending: list[list[int]], loaded: LoadedModel,
                  workers: int, within: Within | None = None) -> Iterator[BatchOutput]:
    """The pending batches decoded by ``workers`` processes (0: in this one), explained here."""
    from torch.utils.data import DataLoader

    from layerscope.folder_report.decode import FileBatches, as_list

    loader = DataLoader(FileBatches(folder.files, loaded.preprocess), batch_sampler=pending, collate_fn=as_list,
                        num_workers=workers)
    for items in loader:
        yield explainer.explain(items, within)


def method_names(spec: str) -> list[str]:
    """``--method``: one name, a comma list (each checked, in order, once) or ``all`` (an empty
    list: every method that applies to the model, known once it is loaded)."""
    if spec.strip().lower() == "all":
        return []
    names = list(dict.fromkeys(get_method(part.strip()).name for part in spec.split(",") if part.strip()))
    if not names:
        raise LayerscopeError("--method names no method; give one, a comma list, or all")
    return names


def resolve_layers(loaded: LoadedModel, spec: str, reshape: TokenGrid | None, tree: ModuleTree) -> list[str]:
    """``auto`` (the suggested layer and its nearest neighbours in its family: the usual question,
    answered in minutes), ``auto-all`` (the family as ``rank`` sweeps it, at most 16) or the
    named layers, resolved."""
    width, height = loaded.input_shape[2], loaded.input_shape[1]
    explainer = PhotoExplainer(loaded, Image.new("RGB", (width, height)), reshape=reshape, tree=tree)
    if spec.strip() == AUTO_ALL:
        return explainer.layer_family()
    if spec.strip() == AUTO:
        suggested = explainer.suggested_layer()
        family = family_names(tree, suggested)
        return neighbours(family if len(family) > 1 else explainer.layer_family(), suggested, CANDIDATES)
    names = [explainer.layer_name(part.strip()) for part in spec.split(",") if part.strip()]
    if not names:
        raise LayerscopeError("--layers names no layer; give auto, auto-all or comma-separated names")
    return list(dict.fromkeys(names))


def neighbours(family: Sequence[str], name: str, count: int) -> list[str]:
    """``count`` consecutive members of ``family`` around ``name`` (centred, shifted inwards at
    either end: the last block takes the ones before it), in the family's order."""
    if name not in family:
        return [name]
    start = max(0, min(family.index(name) - count // 2, len(family) - count))
    return list(family[start:start + count])


def access_expression(tree: ModuleTree, name: str) -> str:
    """How Python reaches the layer, as ``rank`` prints it (``model.features[-1]``)."""
    node = tree.get(name)
    return f"model.{name}" if node is None else (node.access_negative or node.access)


def _by_reason(skipped: Sequence[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in skipped:
        counts[row["reason"]] = counts.get(row["reason"], 0) + 1
    return dict(sorted(counts.items()))
