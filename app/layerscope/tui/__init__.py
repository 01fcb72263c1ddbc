"""The Textual app: the only part of layerscope that imports textual.

Nothing here imports torch at import time, so the first frame paints at once and
the model (and torch with it) loads in a worker thread.
"""
