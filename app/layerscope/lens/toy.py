"""A tiny causal language model that knows one thing: counting in steps (``3 5 7`` → ``9``).

A model to try the lens on with nothing downloaded (the tests, the guide and the app's
snapshots use it), made in seconds on a CPU:
a small Llama config (grouped-query attention, rotary positions, RMSNorm, an untied head)
trained on runs of numbers counted in steps of 1, 2 or 3, saved with a word-level tokenizer as an ordinary
Hugging Face folder. Its answer is known, so a test can say what its last layer must predict; and as the step
can only be read from two tokens, the embeddings alone cannot know it (a lens finds out where
it is known).
"""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = [str(i) for i in range(32)]
RUN = 8  # tokens per training sequence
CONTEXT = 16  # max_position_embeddings: a longer prompt is refused


def word_tokenizer():
    """A whitespace word-level tokenizer over ``WORDS`` (plus ``<unk>``), as transformers saves it."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)} | {"<unk>": len(WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")


def counting_batch(generator: torch.Generator, size: int = 32) -> torch.Tensor:
    """Runs ``s, s+d, s+2d, …`` of ``RUN`` numbers, ``d`` in 1…3, wrapping at 32."""
    start = torch.randint(0, len(WORDS), (size, 1), generator=generator)
    step = torch.randint(1, 4, (size, 1), generator=generator)
    return (start + step * torch.arange(RUN)) % len(WORDS)


def train_counter(steps: int = 200, seed: int = 0):
    """A 2-block Llama that counts: trained until the next number is nearly certain."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(WORDS) + 1,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=CONTEXT,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids = counting_batch(generator)
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def save_counter(folder: Path, steps: int = 200) -> Path:
    """The trained counter and its tokenizer as a Hugging Face folder (safetensors)."""
    folder.mkdir(parents=True, exist_ok=True)
    train_counter(steps).save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder
