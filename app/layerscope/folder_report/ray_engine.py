"""``--engine ray``: the same per-batch function on Ray Data, for folders one machine is slow on.

Each row of the dataset is one of the run's batches (the grid ``Folder.batches`` cuts,
so a batch holds the same images as with ``--engine local`` and gives the same numbers).
Rows are decoded in parallel and explained by actors that each load the model once
(``map_batches`` with a class; one GPU per actor when the model is on ``cuda``). The
actors return plain data (records and PNG bytes); this process writes them, in order,
into the report folder, so a cluster's workers need no access to it.

Ray runs on a local instance started here, or on the cluster ``RAY_ADDRESS`` names
(``ray.init`` reads it); a Ray already initialised by the caller is used as it is.
Only this module imports Ray, and only ``--engine ray`` imports this module.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from layerscope.errors import LayerscopeError
from layerscope.folder_report.dataset import Folder, ImageFile
from layerscope.folder_report.decode import decode
from layerscope.folder_report.evidence import BatchExplainer, BatchOutput, Settings
from layerscope.models import Preprocess

if TYPE_CHECKING:
    from layerscope.folder_report.runner import ModelArgs, ReportRequest


class ExplainActor:
    """A Ray actor's state: the model, loaded once, and the per-batch function, on as many torch
    threads as the driver uses (the thread count changes a float's last bits, and with them the
    order of nearly equal pixels: equal threads give the local engine's records exactly)."""

    def __init__(self, model: ModelArgs, settings: Settings, reshape: Any, threads: int) -> None:
        torch.set_num_threads(threads)
        self.explainer = BatchExplainer(model.load(), settings, reshape=reshape)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        outputs = [self.explainer.explain(items) for items in batch["items"]]
        return {"index": list(batch["index"]), "output": outputs}


def ray_batches(
    request: ReportRequest, settings: Settings, folder: Folder, pending: list[list[int]], preprocess: Preprocess
) -> Iterator[BatchOutput]:
    """The pending batches' outputs, in order, computed on Ray."""
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # the records land in the local engine's order
        context.enable_progress_bars = False  # the CLI draws its own
        rows = [{"index": i, "files": [_plain(folder.files[k]) for k in batch]} for i, batch in enumerate(pending)]
        threads = torch.get_num_threads()
        dataset = (
            ray.data.from_items(rows, override_num_blocks=len(rows))
            .map(_Decoder(preprocess))
            .map_batches(
                ExplainActor,
                fn_constructor_kwargs={
                    "model": request.model,
                    "settings": settings,
                    "reshape": request.reshape,
                    "threads": threads,
                },
                batch_size=1,
                batch_format="pandas",
                num_gpus=1 if request.model.device.startswith("cuda") else 0,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, request.workers)),
            )
        )
        for row in dataset.iter_rows():  # one row per batch, as each is done
            yield row["output"]
    finally:
        if started:
            ray.shutdown()


class _Decoder:
    """Decodes one row's files; rows decode in parallel (Ray fuses this step into the actors)."""

    def __init__(self, preprocess: Preprocess) -> None:
        self.preprocess = preprocess

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        files = [ImageFile(Path(f["path"]), f["name"], f["label"]) for f in row["files"]]
        return {"index": row["index"], "items": [decode(file, self.preprocess) for file in files]}


def _plain(file: ImageFile) -> dict[str, Any]:
    """A file as the plain columns Ray Data stores natively."""
    return {"path": str(file.path), "name": file.name, "label": file.label}


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise LayerscopeError(
            f"--engine ray needs Ray Data: pip install 'layerscope[ray]' ({type(exc).__name__}: {exc})"
        ) from exc
    return ray
