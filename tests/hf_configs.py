"""Hugging Face configs as the hub serves them, for config-only folders (no weights, built on meta)."""

LLAMA_2_70B = {  # meta-llama/Llama-2-70b-hf's config.json as the hub serves it (written by transformers 4.32)
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 8192, "initializer_range": 0.02, "intermediate_size": 28672, "max_position_embeddings": 4096,
    "model_type": "llama", "num_attention_heads": 64, "num_hidden_layers": 80, "num_key_value_heads": 8,
    "pad_token_id": 0, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
    "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.32.0.dev0",
    "use_cache": True, "vocab_size": 32000,
}
