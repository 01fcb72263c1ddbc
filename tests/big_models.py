"""Big synthetic models for scale tests and benchmarks (``big_models:NAME`` specs), built without data."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

HEAD_DIM = 128


class Block(nn.Module):
    """Ten modules a block (itself included): a tiny pre-norm MLP with a gated branch."""

    def __init__(self, dim: int = 2) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, dim)
        self.act = nn.GELU()
        self.down = nn.Linear(dim, dim)
        self.gate = nn.Sequential(nn.Linear(dim, dim), nn.Sigmoid())
        self.drop = nn.Dropout(0.0)
        self.scale = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(self.act(self.up(self.norm(x))))
        return x + self.scale(self.drop(h * self.gate(x)))


class Stack(nn.Module):
    def __init__(self, blocks: int, dim: int = 2) -> None:
        super().__init__()
        self.stem = nn.Linear(dim, dim)
        self.blocks = nn.Sequential(*(Block(dim) for _ in range(blocks)))
        self.head = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def hundred_thousand() -> Stack:
    """10,000 blocks of 10 modules: 100,005 modules in all."""
    return Stack(10_000)


class LlamaAttention(nn.Module):
    def __init__(self, dim: int, kv_dim: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, kv_dim, bias=False)
        self.v_proj = nn.Linear(dim, kv_dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Causal grouped-query attention, key/value heads repeated as Hugging Face's ``repeat_kv`` does."""
        b, s, _ = x.shape
        q, k, v = (proj(x).view(b, s, -1, HEAD_DIM).transpose(1, 2) for proj in (self.q_proj, self.k_proj, self.v_proj))
        groups = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))


class LlamaMLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, dim: int, kv_dim: int, hidden: int) -> None:
        super().__init__()
        self.self_attn = LlamaAttention(dim, kv_dim)
        self.mlp = LlamaMLP(dim, hidden)
        self.input_layernorm = nn.RMSNorm(dim)
        self.post_attention_layernorm = nn.RMSNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    """Llama-3-70B's shapes (80 layers, 8192 wide, GQA with 8 KV heads, 128,256 tokens)."""

    def __init__(
        self, layers: int = 80, dim: int = 8192, kv_dim: int = 1024, hidden: int = 28672, vocab: int = 128_256
    ) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(LlamaDecoderLayer(dim, kv_dim, hidden) for _ in range(layers))
        self.norm = nn.RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm(x))


def llama_70b() -> nn.Module:
    return LlamaModel()
