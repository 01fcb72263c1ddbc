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
from typing import TYPE_CHECKING, Any

from layerscope.errors import LayerscopeError
from layerscope.folder_report.decode import decode
from layerscope.folder_report.evidence import BatchExplainer, BatchOutput, Settings
from layerscope.loading import Preprocess

if TYPE_CHECKING:
    from layerscope.folder_report.dataset import Folder
    from layerscope.folder_report.runner import ModelArgs, ReportRequest


class ExplainActor:
    """A Ray actor's state: the model, loaded once, and the per-batch function."""

    def __init__(self, model: ModelArgs, settings: Settings, reshape: Any) -> None:
        self.explainer = BatchExplainer(model.load(), settings, reshape=reshape)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        outputs = [self.explainer.explain(items) for items in batch["items"]]
        return {"index": list(batch["index"]), "output": outputs}


def ray_batches(request: ReportRequest, settings: Settings, folder: Folder, pending: list[list[int]],
                preprocess: Preprocess) -> Iterator[BatchOutput]:
    """The pending batches' outputs, in order, computed on Ray."""
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # the records land in the local engine's order
        context.enable_progress_bars = False  # the CLI draws its own
        rows = [{"index": i, "files": [folder.files[k] for k in batch]} for i, batch in enumerate(pending)]
        decoder = _Decoder(preprocess)
        dataset = ray.data.from_items(rows).map(decoder).map_batches(
            ExplainActor, fn_constructor_kwargs={"model": request.model, "settings": settings,
                                                 "reshape": request.reshape},
            batch_size=1, batch_format="pandas", compute=ray.data.ActorPoolStrategy(size=max(1, request.workers)),
            num_gpus=1 if request.model.device.startswith("cuda") else 0)
        for row in dataset.iter_rows():
            yield row["output"]
    finally:
        if started:
            ray.shutdown()


class _Decoder:
    """Decodes one row's files (a Ray task per row, so batches decode in parallel)."""

    def __init__(self, preprocess: Preprocess) -> None:
        self.preprocess = preprocess

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"index": row["index"], "items": [decode(file, self.preprocess) for file in row["files"]]}


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise LayerscopeError("--engine ray needs Ray Data: pip install 'layerscope[ray]' "
                              f"({type(exc).__name__}: {exc})") from exc
    return ray
