"""Tiny test models written from scratch: a Gemma 3 style vision projector (mmproj GGUF) for
the tiny random Llama of the create tests, PNG images in pure Python, and a tiny Llama with
fill-in-the-middle tokens.

The projector is the smallest `gemma3` shape llama.cpp's clip code loads: a 32x32 image cut
into 8x8 patches (16), one ViT block, then a 2x2 average pool (4 image tokens) and the
projection to the text model's width.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from pyollama.gguf import read_gguf_info
from tests.unit.create.create_helpers import (
    N_EMBD,
    N_FF,
    N_HEAD,
    N_LAYER,
    N_VOCAB,
    VOCAB_SPM,
    tiny_llama_tensors,
    write_tiny_llama,
)

IMAGE_SIZE = 32
PATCH_SIZE = 8
POOL = 2
V_EMBD = 64
V_FF = 128
V_HEAD = 4
V_LAYERS = 1
# what one image becomes in the prompt: (32 / 8 / 2) ** 2 embeddings
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE // POOL) ** 2


def write_gemma3_projector(path: Path, *, n_embd_text: int = N_EMBD, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)

    def mat(*shape: int) -> np.ndarray[Any, Any]:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    n_patches = (IMAGE_SIZE // PATCH_SIZE) ** 2
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("general.type", "mmproj")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_string("clip.projector_type", "gemma3")
    writer.add_uint32("clip.vision.embedding_length", V_EMBD)
    writer.add_uint32("clip.vision.feed_forward_length", V_FF)
    writer.add_uint32("clip.vision.block_count", V_LAYERS)
    writer.add_uint32("clip.vision.projection_dim", n_embd_text)
    writer.add_uint32("clip.vision.attention.head_count", V_HEAD)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.projector.scale_factor", POOL)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    writer.add_bool("clip.use_gelu", True)
    # numpy shapes are ggml's dimensions reversed
    writer.add_tensor("v.patch_embd.weight", mat(V_EMBD, 3, PATCH_SIZE, PATCH_SIZE).astype(np.float16))
    writer.add_tensor("v.patch_embd.bias", mat(V_EMBD))
    writer.add_tensor("v.position_embd.weight", mat(n_patches, V_EMBD))
    for i in range(V_LAYERS):
        p = f"v.blk.{i}."
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(p + name + ".weight", mat(V_EMBD, V_EMBD))
            writer.add_tensor(p + name + ".bias", mat(V_EMBD))
        for name in ("ln1", "ln2"):
            writer.add_tensor(p + name + ".weight", np.ones(V_EMBD, np.float32))
            writer.add_tensor(p + name + ".bias", np.zeros(V_EMBD, np.float32))
        writer.add_tensor(p + "ffn_up.weight", mat(V_FF, V_EMBD))
        writer.add_tensor(p + "ffn_up.bias", mat(V_FF))
        writer.add_tensor(p + "ffn_down.weight", mat(V_EMBD, V_FF))
        writer.add_tensor(p + "ffn_down.bias", mat(V_EMBD))
    writer.add_tensor("v.post_ln.weight", np.ones(V_EMBD, np.float32))
    writer.add_tensor("v.post_ln.bias", np.zeros(V_EMBD, np.float32))
    writer.add_tensor("mm.soft_emb_norm.weight", np.ones(V_EMBD, np.float32))
    writer.add_tensor("mm.input_projection.weight", mat(V_EMBD, n_embd_text))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def png(width: int, height: int, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A solid-colour RGB PNG (zlib and struct only)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes(rgb) * width  # filter byte 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


FIM_TOKENS = {"pre": "<|fim_prefix|>", "suf": "<|fim_suffix|>", "mid": "<|fim_middle|>"}


# Where a GGUF names its fill-in-the-middle tokens: the keys llama.cpp reads today, and the older
# keys it still reads (CodeLlama's first conversions).
FIM_KEYS = ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.fim_mid_token_id")
FIM_LEGACY_KEYS = ("tokenizer.ggml.prefix_token_id", "tokenizer.ggml.suffix_token_id", "tokenizer.ggml.middle_token_id")


def write_fim_llama(
    path: Path, names: Mapping[str, str] = FIM_TOKENS, keys: tuple[str, str, str] | None = FIM_KEYS
) -> Path:
    """The tiny random Llama with fill-in-the-middle tokens: the last three pieces of its
    vocabulary become control tokens named `names` (`<|fim_prefix|>`, `<|fim_suffix|>`,
    `<|fim_middle|>` unless told otherwise), their ids written under `keys` (none: llama.cpp
    must find them by name), and no chat template, so the engine builds the FIM prompt from them."""
    vocab = read_gguf_info(VOCAB_SPM).metadata
    tokens: list[str] = list(vocab["tokenizer.ggml.tokens"][:N_VOCAB])
    types: list[int] = list(vocab["tokenizer.ggml.token_type"][:N_VOCAB])
    ids = {}
    for i, (role, text) in enumerate(names.items()):
        token_id = N_VOCAB - 3 + i
        tokens[token_id], types[token_id] = text, int(gguf.TokenType.CONTROL)
        ids[role] = token_id
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-fim")
    writer.add_context_length(512)
    writer.add_embedding_length(N_EMBD)
    writer.add_feed_forward_length(N_FF)
    writer.add_block_count(N_LAYER)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(vocab["tokenizer.ggml.scores"][:N_VOCAB])
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    for key, role in zip(keys or (), ("pre", "suf", "mid")):
        writer.add_uint32(key, ids[role])
    for name, data in tiny_llama_tensors(len(tokens)).items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


__all__ = [
    "FIM_KEYS",
    "FIM_LEGACY_KEYS",
    "FIM_TOKENS",
    "IMAGE_TOKENS",
    "png",
    "write_fim_llama",
    "write_gemma3_projector",
    "write_tiny_llama",
]
