"""Messages the workers post back (``post_message`` is thread-safe), each with one handler.

They carry the engine's own types. The main screen handles the model's messages
(``ModelReady``, ``ShapesReady``, ``CostReady``, ``DiffProgress``, ``DiffReady``,
``ActivityReady``, ``TabReady``) and the ones that change more than the Grad-CAM tab
(``RankDone``, ``ImageChecked``); the Grad-CAM panel handles its map's (``CamProgress``,
``CamDone``, ``ScoreProgress``, ``CamScored``). Dataclasses: Textual's ``Message.__post_init__`` does the base
initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message
from textual.worker import Worker

if TYPE_CHECKING:
    from layerscope.activations import ActivationReport
    from layerscope.cam import PhotoExplainer
    from layerscope.cam.metrics import Faithfulness
    from layerscope.cam.ranking import Ranking
    from layerscope.cam.targets import Eligibility
    from layerscope.cost import CostTable
    from layerscope.diff import DiffResult
    from layerscope.running.probe import ShapeInfo
    from layerscope.tui.camlink import CamView
    from layerscope.tui.session import Session
    from layerscope.tui.tabs import TabContent


@dataclass
class ModelReady(Message):
    """The model is loaded and its tree built."""

    session: Session


@dataclass
class ShapesReady(Message):
    """Output shapes, the Grad-CAM eligibility of every module, and the layer a probe suggests as
    the target (None: nothing eligible), for ``session``'s model."""

    session: Session
    shapes: dict[str, ShapeInfo]
    eligibility: dict[str, Eligibility]
    suggested: str | None = None


@dataclass
class CostReady(Message):
    """MACs, FLOPs and activation memory of every module of ``session``'s model."""

    session: Session
    cost: CostTable


@dataclass
class DiffProgress(Message):
    """``done`` of ``total`` tensors compared so far (each replaces the last on screen)."""

    done: int
    total: int


@dataclass
class DiffReady(Message):
    """``d`` finished: what changed from ``session``'s weights file to the other checkpoint."""

    session: Session
    result: DiffResult


@dataclass
class ActivityReady(Message):
    """``A`` finished: every node's activation statistics for ``session``'s model."""

    session: Session
    report: ActivationReport


@dataclass
class TabReady(Message):
    """A slow tab (state_dict or API of a big subtree) filled off the UI thread for node ``index``."""

    index: int
    content: TabContent


@dataclass
class CamProgress(Message):
    done: int
    total: int


@dataclass
class CamDone(Message):
    """The map is drawn (``view``); ``explainer`` is the photo's, with its pass kept for the next ``g``."""

    view: CamView
    explainer: PhotoExplainer


@dataclass
class ScoreProgress(Message):
    view: CamView
    done: int
    total: int


@dataclass
class CamScored(Message):
    """The shown map's deletion/insertion scores, or (``scores`` None) why there are none (``note``)."""

    view: CamView
    scores: Faithfulness | None = None
    note: str = ""


@dataclass
class RankDone(Message):
    """``r`` finished: the family's ranking (best first), and the photo's explainer."""

    ranking: Ranking
    explainer: PhotoExplainer


@dataclass
class ImageChecked(Message):
    """The photo at ``path`` reads (a failure goes to the main screen's ``on_worker_state_changed``)."""

    path: Path


@dataclass
class WorkFailed(Message):
    """A feature widget's worker failed: its ``Worker.StateChanged`` does not bubble, so the
    widget passes the worker up and the screen's one failure handler takes it."""

    worker: Worker
