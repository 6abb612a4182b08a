"""A tiny Llama whose replies are scripts: the prompt's last token picks a script, and greedy
decoding (or any sampler: the margin is large) writes exactly that script's text, then EOS.

How: one transformer block with every attention and feed-forward weight zero, so the hidden
state after the block is the current token's embedding. Each token that has a successor gets
its own one-hot embedding direction, and the output matrix maps that direction to the
successor's logit (all other logits are 0). The next token is therefore a function of the
current token alone, and each script is a chain of tokens that appear nowhere else.

The vocabulary is SentencePiece-style: `<unk>`, `<s>`, `</s>`, the 256 byte tokens (so any
prompt tokenizes), `▁`, one user-defined token per script (its trigger, matched whole in the
prompt) and the scripts' pieces, each a normal token whose text is unique in the vocabulary
(llama.cpp requires it). Pieces that would repeat are merged with a neighbour, so a script's
text is cut where its author cut it unless that would repeat a piece.

A script's trigger is `<<name>>` unless `triggers` names another text for it (such as `<think>`,
so that a prompt a template ends with an opened think tag picks that script).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import gguf
import numpy as np

EOS = 2
_SPECIALS = [("<unk>", gguf.TokenType.UNKNOWN), ("<s>", gguf.TokenType.CONTROL), ("</s>", gguf.TokenType.CONTROL)]
_N_HEAD = 4
_N_FF = 64
_LOGIT = 8.0  # times sqrt(n_embd) after the output norm: ~180 against 0 for every other token


def trigger(name: str) -> str:
    """The text that, ending a prompt, makes the model write script `name`."""
    return f"<<{name}>>"


def _unique_pieces(scripts: Mapping[str, Sequence[str]], reserved: set[str]) -> dict[str, list[str]]:
    used = set(reserved)
    out: dict[str, list[str]] = {}
    for name, wanted in scripts.items():
        pieces: list[str] = []
        i = 0
        while i < len(wanted):
            piece, i = wanted[i], i + 1
            while (piece in used or not piece) and i < len(wanted):
                piece, i = piece + wanted[i], i + 1
            while piece in used or not piece:
                if not pieces:
                    raise ValueError(f"script {name!r} repeats another script's piece {piece!r}")
                previous = pieces.pop()
                used.discard(previous)
                piece = previous + piece
            used.add(piece)
            pieces.append(piece)
        out[name] = pieces
    return out


def _base_vocabulary() -> tuple[list[str], list[int]]:
    tokens: list[str] = [text for text, _ in _SPECIALS]
    types: list[int] = [int(kind) for _, kind in _SPECIALS]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [int(gguf.TokenType.BYTE)] * 256
    tokens.append("\u2581")
    types.append(int(gguf.TokenType.NORMAL))
    return tokens, types


def _triggers(scripts: Mapping[str, Sequence[str]], triggers: Mapping[str, str] | None) -> dict[str, str]:
    return {name: (triggers or {}).get(name, trigger(name)) for name in scripts}


def script_tokens(
    scripts: Mapping[str, Sequence[str]], triggers: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """The tokens each script is written in (its pieces, some merged to stay unique)."""
    tokens, _ = _base_vocabulary()
    return _unique_pieces(scripts, set(tokens) | set(_triggers(scripts, triggers).values()))


def write_scripted_llama(
    path: Path, scripts: Mapping[str, Sequence[str]], triggers: Mapping[str, str] | None = None
) -> Path:
    """Write the GGUF; `scripts` maps a name to the pieces of its text (the tokens it streams as),
    `triggers` a name to the text that picks it when it is not `<<name>>`."""
    tokens, types = _base_vocabulary()
    triggers = _triggers(scripts, triggers)
    pieces = script_tokens(scripts, triggers)

    successor: dict[int, int] = {}
    for name, script in pieces.items():
        previous = len(tokens)
        tokens.append(triggers[name])
        types.append(int(gguf.TokenType.USER_DEFINED))
        for piece in script:
            successor[previous] = len(tokens)
            previous = len(tokens)
            tokens.append(piece)
            types.append(int(gguf.TokenType.NORMAL))
        successor[previous] = EOS

    n_vocab = len(tokens)
    n_embd = max(256, -(-len(successor) // 256) * 256)
    embd = np.zeros((n_vocab, n_embd), np.float32)
    output = np.zeros((n_vocab, n_embd), np.float32)
    for k, (token, following) in enumerate(successor.items()):
        embd[token, k] = 1.0
        output[following, k] = _LOGIT

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("scripted-llama")
    writer.add_context_length(2048)
    writer.add_embedding_length(n_embd)
    writer.add_feed_forward_length(_N_FF)
    writer.add_block_count(1)
    writer.add_head_count(_N_HEAD)
    writer.add_head_count_kv(_N_HEAD)
    writer.add_rope_dimension_count(n_embd // _N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * n_vocab)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(EOS)
    writer.add_unk_token_id(0)
    zeros = np.zeros
    writer.add_tensor("token_embd.weight", embd)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    writer.add_tensor("output.weight", output)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(n_embd, np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        writer.add_tensor(f"blk.0.{name}.weight", zeros((n_embd, n_embd), np.float32))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, np.float32))
    writer.add_tensor("blk.0.ffn_gate.weight", zeros((_N_FF, n_embd), np.float32))
    writer.add_tensor("blk.0.ffn_up.weight", zeros((_N_FF, n_embd), np.float32))
    writer.add_tensor("blk.0.ffn_down.weight", zeros((n_embd, _N_FF), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_scripted_llama_with_template(
    path: Path, scripts: Mapping[str, Sequence[str]], chat_template: str, triggers: Mapping[str, str] | None = None
) -> Path:
    """`write_scripted_llama`, with a Jinja chat template in the GGUF (tokenizer.chat_template)."""
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    plain = write_scripted_llama(path.with_name(path.stem + "-plain.gguf"), scripts, triggers)
    reader = gguf.GGUFReader(str(plain), "r")
    writer = gguf.GGUFWriter(str(path), arch="llama")
    template = {gguf.Keys.Tokenizer.CHAT_TEMPLATE: MetadataDetails(gguf.GGUFValueType.STRING, chat_template)}
    copy_with_new_metadata(reader, writer, template, [])
    return path
