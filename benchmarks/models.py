"""Generated models for the benchmarks: shapes that stress the tree, built without data."""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    """Eleven modules: enough nesting to look like a real network, tiny tensors."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm(x))
        return x + self.mlp(x)


def wide_model(modules: int = 100_000, dim: int = 8) -> nn.Module:
    """A ModuleList of 11-module blocks: ``modules`` modules in all (rounded down to whole blocks)."""
    blocks = max(1, (modules - 2) // 11)
    return nn.Sequential(nn.ModuleList(Block(dim) for _ in range(blocks)))


class LlamaAttention(nn.Module):
    def __init__(self, dim: int, kv_dim: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, kv_dim, bias=False)
        self.v_proj = nn.Linear(dim, kv_dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)


class LlamaMLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)
        self.act_fn = nn.SiLU()


class LlamaDecoderLayer(nn.Module):
    def __init__(self, dim: int, kv_dim: int, hidden: int) -> None:
        super().__init__()
        self.self_attn = LlamaAttention(dim, kv_dim)
        self.mlp = LlamaMLP(dim, hidden)
        self.input_layernorm = nn.RMSNorm(dim)
        self.post_attention_layernorm = nn.RMSNorm(dim)


class LlamaModel(nn.Module):
    """Llama-3-70B's shapes (80 layers, 8192 wide, GQA with 8 KV heads, 128,256 tokens)."""

    def __init__(self, layers: int = 80, dim: int = 8192, kv_dim: int = 1024, hidden: int = 28672,
                 vocab: int = 128_256) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(LlamaDecoderLayer(dim, kv_dim, hidden) for _ in range(layers))
        self.norm = nn.RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)


def llama_70b() -> nn.Module:
    return LlamaModel()
