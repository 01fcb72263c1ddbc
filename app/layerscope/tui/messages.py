"""Messages the workers post back to the app (``post_message`` is thread-safe).

Dataclasses: Textual's ``Message.__post_init__`` does the base initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from layerscope.tui.camlink import CamCache, CamView
    from layerscope.tui.session import Session


@dataclass
class ModelReady(Message):
    """The model is loaded and its tree built."""

    session: Session


@dataclass
class ShapesReady(Message):
    """Output shapes, Grad-CAM eligibility ``(kind, reason)`` of every module, and the layer a
    probe suggests as the target (None: nothing eligible)."""

    shapes: dict[str, Any]
    eligibility: dict[str, tuple[str, str]]
    suggested: str | None = None


@dataclass
class CostReady(Message):
    """MACs, FLOPs and activation memory of every module (``layerscope.cost.CostTable``)."""

    session: Session
    cost: Any


@dataclass
class PanelReady(Message):
    """A slow tab (state_dict or API of a big subtree) computed off the UI thread."""

    tab: str
    index: int
    payload: Any


@dataclass
class CamDone(Message):
    view: CamView
    cache: CamCache


@dataclass
class CamProgress(Message):
    done: int
    total: int


@dataclass
class ImageChecked(Message):
    """The photo at ``path`` reads (a failure goes to the app's ``on_worker_state_changed``)."""

    path: Path


@dataclass
class CamScored(Message):
    """The shown map's deletion/insertion scores (``scores``), or why there are none (``note``)."""

    view: CamView
    scores: Any = None  # layerscope.cam.metrics.Faithfulness
    note: str = ""


@dataclass
class ScoreProgress(Message):
    view: CamView
    done: int
    total: int


@dataclass
class RankDone(Message):
    """``r`` finished: the family's ``Ranking`` (best first), and the photo's explainer."""

    ranking: Any
    cache: CamCache
