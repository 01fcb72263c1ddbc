"""What each layer of a causal language model predicts, and where its heads look, for a prompt.

The logit lens (nostalgebraist 2020): every decoder block's output (and the embeddings)
passed through the model's own final norm and output head, so that the last block's lens
is the model's own next-token distribution. Attention probabilities come from the same
scoped mechanism the transformer-native vision maps use (``layerscope.cam.attention``):
the model runs its usual fused attention, computed in the open on this thread only.
"""

from layerscope.lens.heads import HeadAttention, head_attention
from layerscope.lens.language import LanguageModel, language_model
from layerscope.lens.logit_lens import EMBEDDINGS, Guess, LayerLens, LensResult, logit_lens

__all__ = [
    "EMBEDDINGS",
    "Guess",
    "HeadAttention",
    "LanguageModel",
    "LayerLens",
    "LensResult",
    "head_attention",
    "language_model",
    "logit_lens",
]
