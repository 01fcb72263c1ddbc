"""The logit lens: each chosen layer's hidden state through the model's own final norm and head.

The hidden states are taken by hooks on the decoder blocks (the input of the first block
is the embeddings), not from ``output_hidden_states``: transformers hands the *normed*
last state there, and hooks name each state by the module it came from, as the tree does.
The last block's lens is checked against the model's own logits, so a model whose head
does more than norm and project (a logit scale no config names) is refused, not misread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from layerscope.cam.hooks import flatten_output
from layerscope.errors import LayerscopeError
from layerscope.lens.language import LanguageModel, no_grad_forward

EMBEDDINGS = "embeddings"  # the lens of the first block's input
NORM_NAMES = ("norm", "ln_f", "final_layernorm", "norm_f", "final_norm", "final_layer_norm")


@dataclass(frozen=True)
class Guess:
    """One next-token candidate: its text, id and probability."""

    token: str
    id: int
    p: float

    def as_json(self) -> dict[str, object]:
        return {"token": self.token, "id": self.id, "p": self.p}


@dataclass(frozen=True)
class LayerLens:
    """One layer's top-k guesses at each chosen position, in prompt order."""

    layer: str
    positions: list[list[Guess]]


@dataclass(frozen=True)
class LensResult:
    """The prompt's tokens, the positions shown (indices into ``tokens``) and each layer's lens."""

    model: str
    tokens: list[str]
    positions: list[int]
    layers: list[LayerLens]

    def as_json(self) -> dict[str, object]:
        """The issue's JSON: layers in model order, positions in prompt order."""
        return {
            "model": self.model,
            "tokens": self.tokens,
            "layers": [
                {"layer": layer.layer, "positions": [{"top": [g.as_json() for g in top]} for top in layer.positions]}
                for layer in self.layers
            ],
        }


def decoder_blocks(model: nn.Module) -> list[str]:
    """The decoder blocks by module name: the children of the ``ModuleList`` holding
    ``num_hidden_layers`` of them (else the longest one)."""
    wanted = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    lists = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.ModuleList)]
    exact = [item for item in lists if len(item[1]) == wanted]
    found = exact[0] if exact else max(lists, key=lambda item: len(item[1]), default=None)
    if found is None or len(found[1]) == 0:
        raise LayerscopeError(f"{type(model).__name__} has no list of decoder blocks the lens can read")
    return [f"{found[0]}.{name}" for name, _ in found[1].named_children()]


def choose_layers(text: str, blocks: list[str]) -> list[str]:
    """``auto`` (the embeddings and every block) or ``a,b,c``: names, or block numbers (``-1``: the last)."""
    every = [EMBEDDINGS, *blocks]
    if text.strip() == "auto":
        return every
    chosen = {_one_layer(word.strip(), blocks) for word in text.split(",") if word.strip()}
    if not chosen:
        raise LayerscopeError("--layers names no layer; give auto or names like " + _span(blocks))
    return [name for name in every if name in chosen]


def _one_layer(word: str, blocks: list[str]) -> str:
    if word in (EMBEDDINGS, *blocks):
        return word
    if word.lstrip("-").isdigit() and -len(blocks) <= int(word) < len(blocks):
        return blocks[int(word)]
    raise LayerscopeError(
        f"{word!r} is not a decoder block; name {EMBEDDINGS}, a block ({_span(blocks)}) or a "
        f"block number 0–{len(blocks) - 1}"
    )


def _span(blocks: list[str]) -> str:
    return ", ".join(blocks) if len(blocks) <= 3 else f"{blocks[0]} … {blocks[-1]}"


def choose_positions(text: str | int, count: int) -> list[int]:
    """``all``, or one position (``-1``: the last token)."""
    if isinstance(text, str) and text.strip() == "all":
        return list(range(count))
    try:
        index = int(text)
    except ValueError:
        raise LayerscopeError(f"--position takes all, -1 or a token number, not {text!r}") from None
    if not -count <= index < count:
        raise LayerscopeError(f"position {index} is outside the prompt's {count} tokens")
    return [index % count]


def lens_head(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """Hidden states ``…×D`` → logits through the model's final norm and output head (and the
    final soft-cap a config names)."""
    base = getattr(model, "base_model", None)
    norm = next((m for n in NORM_NAMES if isinstance(m := getattr(base, n, None), nn.Module)), None)
    head = model.get_output_embeddings()  # type: ignore[operator]
    if norm is None or not isinstance(head, nn.Module):
        raise LayerscopeError(
            f"the lens needs {type(model).__name__}'s final norm ({', '.join(NORM_NAMES[:3])}, …) "
            "and output head, and did not find them"
        )
    cap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)

    def logits(hidden: Tensor) -> Tensor:
        out = head(norm(hidden))
        return torch.tanh(out / cap) * cap if cap else out

    return logits


def hidden_states(model: nn.Module, blocks: list[str], ids: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """Each block's output and the first block's input (``EMBEDDINGS``), ``1×T×D``, and the model's logits."""
    modules = dict(model.named_modules())
    states: dict[str, Tensor] = {}

    def entered(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        states[EMBEDDINGS] = args[0] if args else kwargs["hidden_states"]

    def left(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            states[name] = flatten_output(output)[0][0]

        return hook

    handles = [modules[blocks[0]].register_forward_pre_hook(entered, with_kwargs=True)]
    handles += [modules[name].register_forward_hook(left(name)) for name in blocks]
    try:
        logits = no_grad_forward(model, ids)
    finally:
        for handle in handles:
            handle.remove()
    return states, logits


def logit_lens(
    lm: LanguageModel, prompt: str, layers: str = "auto", top_k: int = 5, position: str | int = "all"
) -> LensResult:
    """The top ``top_k`` next tokens of every chosen layer at every chosen position."""
    ids = lm.encode(prompt)
    blocks = decoder_blocks(lm.model)
    chosen = choose_layers(layers, blocks)
    positions = choose_positions(position, ids.shape[-1])
    states, logits = hidden_states(lm.model, blocks, ids)
    head = lens_head(lm.model)
    with torch.no_grad():
        _check_last(head(states[blocks[-1]]), logits, lm.loaded.spec)
        found = [LayerLens(name, _top(lm, head(states[name])[0, positions], top_k)) for name in chosen]
    return LensResult(lm.loaded.spec, lm.token_texts(ids[0].tolist()), positions, found)


def _check_last(lensed: Tensor, logits: Tensor, spec: str) -> None:
    if lensed.shape != logits.shape or not torch.allclose(lensed.float(), logits.float(), rtol=1e-3, atol=1e-3):
        raise LayerscopeError(
            f"{spec}'s final norm and head do not reproduce its own output from its last block "
            "(a logit scale after the head?); the lens would misread it"
        )


def _top(lm: LanguageModel, logits: Tensor, k: int) -> list[list[Guess]]:
    probs = logits.float().softmax(dim=-1)
    values, indices = probs.topk(min(k, probs.shape[-1]), dim=-1)
    rows = []
    for p_row, id_row in zip(values.tolist(), indices.tolist(), strict=True):
        texts = lm.token_texts(id_row)
        rows.append([Guess(t, i, p) for t, i, p in zip(texts, id_row, p_row, strict=True)])
    return rows
