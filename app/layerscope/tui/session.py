"""What the app knows, as plain data kept outside the widgets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from layerscope.activations import ActivationReport
    from layerscope.cam.ranking import Ranking
    from layerscope.cam.targets import Eligibility
    from layerscope.cost import CostTable
    from layerscope.diff import DiffResult
    from layerscope.models.loaded import LoadedModel
    from layerscope.running.probe import ShapeInfo
    from layerscope.tree import ModuleTree, Node

SAMPLE_IMAGE = Path(__file__).resolve().parent.parent / "samples" / "chelsea.png"

Loader = Callable[[], "LoadedModel"]
LineReader = Callable[[str], "tuple[str, Loader]"]  # "resnet50 --weights DEFAULT" -> (spec, loader)


@dataclass(frozen=True)
class AppOptions:
    """What the app was started with (the command line, or a test): the main screen's settings."""

    load: Loader  # runs in a worker: the first frame paints before torch is imported
    spec: str = "model"  # the model being loaded, as the header names it
    image: Path = SAMPLE_IMAGE  # the photo Grad-CAM explains first
    save_dir: Path = field(default_factory=Path.cwd)  # where ``s`` writes
    probe_inputs: tuple[str, ...] = ()  # every --input ("3x224x224", "ids=128:long"); none: the weights' own size
    pixels: str | None = None  # "kitty" / "sixel": the terminal draws the overlay's pixels
    read_line: LineReader | None = None  # ``l``: reads a typed model line as the command line would
    diff: str | None = None  # ``--diff B``: compare the model's weights with B once it has loaded
    trust: bool = False  # ``--trust``: a checkpoint ``d`` reads may be unpickled whole


@dataclass
class Session:
    """The loaded model, its tree, the probed shapes and the Grad-CAM choices."""

    loaded: LoadedModel
    tree: ModuleTree
    image: Path = SAMPLE_IMAGE
    shapes: dict[str, ShapeInfo] | None = None
    eligibility: dict[str, Eligibility] = field(default_factory=dict)  # by module name, once probed
    suggested: str | None = None  # the probed guess at a Grad-CAM target (camlink.probed_target)
    probe_error: str | None = None  # why the shape probe failed, if it did
    cost: CostTable | None = None  # counted right after the shape probe
    cost_error: str | None = None  # why it could not be counted, if so
    target: int | None = None  # node index of the Grad-CAM layer
    method: str = "gradcam"
    class_index: int | None = None  # None: the top prediction
    ranking: Ranking | None = None  # the last ``r``, best first
    class_pinned: bool = False  # keep class_index when another image is opened (C)
    diff: DiffResult | None = None  # ``d``: what changed from the model's weights file to another checkpoint
    activity: ActivationReport | None = None  # ``A``: every node's activation statistics

    def node(self, index: int) -> Node:
        return self.tree.nodes[index]

    def module(self, index: int) -> nn.Module:
        """The module at node ``index``, walked child by child: ScriptModules (TorchScript
        archives opened with ``--trust``) refuse ``get_submodule`` but list their children."""
        name, module = self.tree.nodes[index].name, self.loaded.model
        for part in name.split(".") if name else ():
            module = dict(module.named_children())[part]
        return module

    def verdict(self, index: int) -> Eligibility | None:
        """Node ``index``'s Grad-CAM eligibility, once the shapes are probed."""
        return self.eligibility.get(self.tree.nodes[index].name)

    def class_name(self, index: int | None) -> str:
        if index is None:
            return "top prediction"
        cats = self.loaded.categories or []
        return f"{index} {cats[index]}" if 0 <= index < len(cats) else str(index)

    def change_image(self, path: Path) -> bool:
        """Explain ``path`` from now on. A class chosen for the last photo rarely fits the next
        one (a coffee cup explained "for tiger cat"), so it returns to the top prediction unless
        pinned; True when it did."""
        self.image = path
        reset = self.class_index is not None and not self.class_pinned
        if reset:
            self.class_index = None
        return reset
