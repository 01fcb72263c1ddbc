"""A Hugging Face folder's JSON treated as untrusted input: every value layerscope or
transformers would act on is checked before either does.

A one-line edit of ``config.json`` or ``preprocessor_config.json`` (``architectures: 5``,
``num_attention_heads: 0``, ``size`` 60000, ``image_std [0, 0, 0]``, an
``attn_implementation`` naming a kernel on the hub) would otherwise end in a traceback,
a division by zero or gigabytes of memory. Each refusal is one line naming the file and
the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from layerscope.errors import LayerscopeError
from layerscope.models.loaded import MAX_SIDE

# whole numbers that size a model: at least 1 (0 heads divides by zero), never bools or strings
COUNT_KEYS = frozenset(
    {
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "intermediate_size",
        "vocab_size",
        "max_position_embeddings",
        "head_dim",
        "num_channels",
        "embed_dim",
        "num_layers",
        "num_heads",
        "n_embd",
        "n_layer",
        "n_head",
        "d_model",
        "encoder_layers",
        "decoder_layers",
        "hidden_sizes",
        "depths",
    }
)
SIDE_KEYS = frozenset({"image_size", "patch_size"})  # pixels: at most MAX_SIDE, as for photos
NULLABLE = frozenset({"head_dim", "num_key_value_heads", "intermediate_size"})  # None: derived from the others
MAX_COUNT = 2**31 - 1
MAX_LABELS = 1_000_000  # classes: ImageNet-21k has 21,843; transformers names each one
DTYPES = frozenset({"float32", "float16", "bfloat16", "float64", "float", "half", "double", "auto"})
ATTENTION = frozenset({"eager", "sdpa"})  # anything else is a library or a kernel fetched from the hub


def check_config(data: Mapping[str, Any], file: Path) -> None:
    """The values of ``config.json`` (and of its nested ``text_config``, ``vision_config`` …)
    that decide what transformers builds and what layerscope reads."""
    names = data.get("architectures")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) and n for n in names)):
        raise bad(file, "architectures", names, "a list of class names")
    _check_labels(data, file)
    _check_sizes(data, file, "")
    for key in ("dtype", "torch_dtype"):
        value = data.get(key)
        if value is not None and not (isinstance(value, str) and value.removeprefix("torch.") in DTYPES):
            raise bad(file, key, value, f"one of {', '.join(sorted(DTYPES))}")
    if data.get("quantization_config") is not None:
        method = data["quantization_config"]
        method = method.get("quant_method", "?") if isinstance(method, Mapping) else method
        raise LayerscopeError(
            f"{file}: quantization_config ({str(method)[:40]}) is not supported: layerscope "
            "reads unquantized weights (the quantization libraries need a GPU and run their own code)"
        )
    for key in ("attn_implementation", "_attn_implementation"):
        value = data.get(key)
        if value is not None and value not in ATTENTION:
            raise bad(file, key, value, "eager or sdpa (other values load kernels, some fetched from the hub)")
    for key in ("rope_scaling", "rope_parameters"):
        _check_rope(data.get(key), file, key)


def _check_labels(data: Mapping[str, Any], file: Path) -> None:
    """``num_labels``, ``id2label`` and ``label2id`` bounded: transformers builds a name for
    every one of ``num_labels`` (a billion of them: gigabytes, then a MemoryError)."""
    count = data.get("num_labels")
    if count is not None and not _whole(count, 0, MAX_LABELS):
        raise bad(file, "num_labels", count, f"a whole number from 0 to {MAX_LABELS:,}")
    label2id = data.get("label2id")
    if label2id is not None and not (isinstance(label2id, Mapping) and len(label2id) <= MAX_LABELS):
        raise bad(
            file,
            "label2id",
            f"{len(label2id):,} names" if isinstance(label2id, Mapping) else label2id,
            f"an object of at most {MAX_LABELS:,} class name → index",
        )
    id2label = data.get("id2label")
    if id2label is None:
        return
    if not isinstance(id2label, Mapping):
        raise bad(file, "id2label", id2label, "an object of class index → name")
    if len(id2label) > MAX_LABELS:
        raise bad(file, "id2label", f"{len(id2label):,} names", f"at most {MAX_LABELS:,} class names")
    for key, value in id2label.items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit() and len(key) < 10 and isinstance(value, str)):
            raise bad(file, "id2label", {key: value}, "an object of class index → name")


def _check_sizes(data: Mapping[str, Any], file: Path, prefix: str) -> None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key in COUNT_KEYS or key in SIDE_KEYS:
            if value is None and key in NULLABLE:
                continue
            top = MAX_SIDE if key in SIDE_KEYS else MAX_COUNT
            values = value if isinstance(value, list) else [value]  # Swin's depths, num_heads; [H, W] image sizes
            if not values or not all(_whole(v, 1, top) for v in values):
                raise bad(file, name, value, f"a whole number from 1 to {top:,}")
        elif isinstance(value, Mapping) and key.endswith("_config") and key != "quantization_config":
            _check_sizes(value, file, f"{name}.")


def _check_rope(rope: object, file: Path, key: str) -> None:
    if rope is None:
        return
    if not isinstance(rope, Mapping):
        raise bad(file, key, rope, "an object with a rope_type")
    if "rope_type" not in rope and "type" not in rope and rope and all(isinstance(v, Mapping) for v in rope.values()):
        for layer_type, each in rope.items():  # one per attention kind (Gemma 3)
            _check_rope(each, file, f"{key}.{layer_type}")
        return
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    kind = rope.get("rope_type", rope.get("type", "default"))
    known = {"default", *ROPE_INIT_FUNCTIONS}
    if kind not in known:
        raise bad(file, f"{key}.rope_type", kind, f"one of {', '.join(sorted(known))}")


def check_preprocessor(saved: Mapping[str, Any], file: Path) -> None:
    """Sizes, scale and normalisation of ``preprocessor_config.json``: a string, 0, a negative
    number, ``Infinity``, 60000 pixels, ``rescale_factor 0`` or ``image_std [0, 0, 0]``
    would crash, divide by zero or ask for gigabytes."""
    for key in ("size", "crop_size"):
        value = saved.get(key)
        sides = value.items() if isinstance(value, Mapping) else [(key, value)] if value is not None else []
        for part, side in sides:
            name = key if part == key else f"{key}.{part}"
            if not _whole(side, 1, MAX_SIDE):
                raise bad(file, name, side, f"a whole number of pixels from 1 to {MAX_SIDE}")
    scale = saved.get("rescale_factor")
    if scale is not None and not _number(scale, 1e-6, 1.0):
        raise bad(file, "rescale_factor", scale, "a number above 0 and at most 1 (1/255 for 8-bit photos)")
    crop_pct = saved.get("crop_pct")
    if crop_pct is not None and not _number(crop_pct, 0.05, 1.0):
        raise bad(file, "crop_pct", crop_pct, "a fraction from 0.05 to 1")
    for key, low in (("image_mean", -1e6), ("image_std", 1e-6)):
        value = saved.get(key)
        values = value if isinstance(value, list) else [value] if value is not None else []
        if not all(_number(v, low, 1e6) for v in values):
            raise bad(file, key, value, "numbers" if low < 0 else "numbers above 0 (each channel is divided by it)")


def bad(file: Path, key: str, value: object, expected: str) -> LayerscopeError:
    """``config.json: num_attention_heads is 0; expected a whole number from 1 to …``"""
    shown = repr(value)
    shown = shown if len(shown) <= 60 else f"{shown[:57]}..."
    return LayerscopeError(f"{file}: {key} is {shown}; expected {expected}")


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _number(value: object, low: float, high: float) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )
