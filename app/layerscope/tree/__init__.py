"""The module tree: one pass over a model (``build_tree``), an immutable node per registration.

``module_tree`` holds what a tree is and how it is queried (``ModuleTree``, ``Node``),
``build`` the walk that makes one, ``counting`` the per-node counters it sums.
"""

from layerscope.tree.build import build_tree
from layerscope.tree.module_tree import CONTAINER_CLASSES, ModuleTree, Node, RepeatRun, SharedTensor, class_name_of

__all__ = ["CONTAINER_CLASSES", "ModuleTree", "Node", "RepeatRun", "SharedTensor", "build_tree", "class_name_of"]
