"""Helpers for the create tests: a tiny runnable Llama, LoRA and projector GGUFs, blobs by hard link.

The tiny Llama has random weights, the first 1024 pieces of the SentencePiece vocabulary
of llama.cpp's `ggml-vocab-llama-spm.gguf`, and widths that are multiples of 256
so that K-quants apply to its matrices rather than falling back to other types.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from pyollama.gguf import read_gguf_info
from pyollama.store.create import CreateRequest, create_model
from pyollama.store.store import Store

REPO = Path(__file__).resolve().parents[3]
VOCAB_SPM = REPO / "vendor" / "llama.cpp" / "models" / "ggml-vocab-llama-spm.gguf"

N_VOCAB = 1024
N_EMBD = 256
N_FF = 512
N_HEAD = 4
N_LAYER = 2


def tiny_llama_tensors(n_vocab: int, seed: int = 0) -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)

    def mat(rows: int, cols: int) -> np.ndarray[Any, Any]:
        return (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)

    tensors = {"token_embd.weight": mat(n_vocab, N_EMBD), "output_norm.weight": np.ones(N_EMBD, np.float32)}
    for i in range(N_LAYER):
        p = f"blk.{i}."
        tensors[p + "attn_norm.weight"] = np.ones(N_EMBD, np.float32)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensors[p + name + ".weight"] = mat(N_EMBD, N_EMBD)
        tensors[p + "ffn_norm.weight"] = np.ones(N_EMBD, np.float32)
        tensors[p + "ffn_gate.weight"] = mat(N_FF, N_EMBD)
        tensors[p + "ffn_up.weight"] = mat(N_FF, N_EMBD)
        tensors[p + "ffn_down.weight"] = mat(N_EMBD, N_FF)
    return tensors


def write_tiny_llama(path: Path, dtype: str = "F16", split_max_tensors: int = 0) -> Path:
    """A runnable random Llama GGUF (F16, F32, BF16 or Q8_0 weights); split into parts when asked."""
    vocab = read_gguf_info(VOCAB_SPM).metadata
    # The first 1024 pieces (specials, the 256 byte tokens, the most frequent merges) form a
    # complete SentencePiece vocabulary: small weights, fast quantization.
    tokens: list[str] = vocab["tokenizer.ggml.tokens"][:N_VOCAB]
    writer = gguf.GGUFWriter(str(path), "llama", split_max_tensors=split_max_tensors)
    writer.add_name("tiny-llama")
    writer.add_context_length(512)
    writer.add_embedding_length(N_EMBD)
    writer.add_feed_forward_length(N_FF)
    writer.add_block_count(N_LAYER)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    file_types = {"F32": 0, "F16": 1, "Q8_0": 7, "BF16": 32}
    writer.add_file_type(file_types[dtype])
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(vocab["tokenizer.ggml.scores"][:N_VOCAB])
    writer.add_token_types(vocab["tokenizer.ggml.token_type"][:N_VOCAB])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    for name, data in tiny_llama_tensors(len(tokens)).items():
        if data.ndim == 1 or dtype == "F32":
            writer.add_tensor(name, data)
        elif dtype == "F16":
            writer.add_tensor(name, data.astype(np.float16))
        else:
            qtype = gguf.GGMLQuantizationType[dtype]
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def link_blob(store: Store, path: Path, digest: str | None = None) -> str:
    """Put a file into the store's blobs by hard link (instant; blobs are never written in place)."""
    digest = digest or sha256_of(path)
    target = store.blobs.path(digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        try:
            os.link(path, target)
        except OSError:
            store.blobs.add_file(path)
    return digest


def run_create(store: Store, request: CreateRequest, **kwargs: Any) -> list[dict[str, Any]]:
    return list(create_model(store, request, **kwargs))


def statuses(events: list[dict[str, Any]]) -> list[str]:
    return [e["status"] for e in events]


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def write_lora(
    path: Path, rank: int = 4, arch: str = "llama", *, scale: float = 0.01, targets: tuple[str, ...] = ("attn_q",)
) -> Path:
    """A LoRA adapter GGUF for the tiny Llama (llama.cpp's layout: lora_a is [n_in, r], lora_b [r, n_out]).

    `targets` are square attention matrices (attn_q, attn_k, attn_v, attn_output); A and B are
    normal with standard deviation `scale` (0.01 barely moves the model; 0.5 changes its output)."""
    rng = np.random.default_rng(1)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for i in range(N_LAYER):
        for target in targets:
            writer.add_tensor(
                f"blk.{i}.{target}.weight.lora_a", (rng.standard_normal((rank, N_EMBD)) * scale).astype(np.float32)
            )
            writer.add_tensor(
                f"blk.{i}.{target}.weight.lora_b", (rng.standard_normal((N_EMBD, rank)) * scale).astype(np.float32)
            )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_projector(path: Path) -> Path:
    """A (weightless in spirit) CLIP projector GGUF: metadata and one tensor, as mmproj files are typed."""
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("general.type", "mmproj")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_uint32("clip.vision.block_count", 1)
    writer.add_tensor("mm.0.weight", np.ones((8, 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
