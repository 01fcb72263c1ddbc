"""One module per kind of model spec, each a ``layerscope.models.source.ModelSource``."""
