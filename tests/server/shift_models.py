"""A tiny random Mamba GGUF: a model whose memory is recurrent, so llama.cpp can neither remove
part of a sequence nor move its positions (`Context.can_shift` is false). The vocabulary is the
tiny Llama's (the first pieces of llama.cpp's SentencePiece test vocabulary); the weights are
random, except that the end-of-sequence token's embedding (tied to the output) is zero, so the
model never chooses to stop and generations run as long as they are asked to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np

from pyollama.gguf import read_gguf_info
from tests.unit.create.create_helpers import N_VOCAB, VOCAB_SPM

N_EMBD = 64
D_INNER = 128
D_STATE = 16
D_CONV = 4
DT_RANK = 4
N_LAYER = 2
EOS = 2


def write_tiny_mamba(path: Path, seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)

    def mat(*shape: int, scale: float = 0.2) -> np.ndarray[Any, Any]:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    vocab = read_gguf_info(VOCAB_SPM).metadata
    writer = gguf.GGUFWriter(str(path), "mamba")
    writer.add_name("tiny-mamba")
    writer.add_context_length(512)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(0)
    writer.add_head_count(0)
    writer.add_ssm_conv_kernel(D_CONV)
    writer.add_ssm_inner_size(D_INNER)
    writer.add_ssm_state_size(D_STATE)
    writer.add_ssm_time_step_rank(DT_RANK)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab["tokenizer.ggml.tokens"][:N_VOCAB])
    writer.add_token_scores(vocab["tokenizer.ggml.scores"][:N_VOCAB])
    writer.add_token_types(vocab["tokenizer.ggml.token_type"][:N_VOCAB])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(EOS)
    writer.add_unk_token_id(0)
    embeddings = mat(N_VOCAB, N_EMBD, scale=1.0)
    embeddings[EOS] = 0.0
    # numpy shapes are ggml's dimensions reversed
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, np.float32))
    for i in range(N_LAYER):
        p = f"blk.{i}."
        writer.add_tensor(p + "attn_norm.weight", np.ones(N_EMBD, np.float32))
        writer.add_tensor(p + "ssm_in.weight", mat(2 * D_INNER, N_EMBD))
        writer.add_tensor(p + "ssm_conv1d.weight", mat(D_INNER, D_CONV))
        writer.add_tensor(p + "ssm_conv1d.bias", mat(D_INNER))
        writer.add_tensor(p + "ssm_x.weight", mat(DT_RANK + 2 * D_STATE, D_INNER))
        writer.add_tensor(p + "ssm_dt.weight", mat(D_INNER, DT_RANK))
        writer.add_tensor(p + "ssm_dt.bias", mat(D_INNER))
        writer.add_tensor(p + "ssm_a", -np.exp(mat(D_INNER, D_STATE)) * 1e-3)  # slow decay: a long memory
        writer.add_tensor(p + "ssm_d", np.ones(D_INNER, np.float32))
        writer.add_tensor(p + "ssm_out.weight", mat(N_EMBD, D_INNER))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
