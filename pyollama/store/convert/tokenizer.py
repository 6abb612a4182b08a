"""Hugging Face tokenizer files -> GGUF tokenizer metadata (`tokenizer.ggml.*`).

Three vocabularies come out, the ones llama.cpp implements:

- `gpt2`: byte-level BPE from tokenizer.json (Llama 3, SmolLM, Qwen2), with
  merges and a `tokenizer.ggml.pre` name chosen from the pre-tokenizer's
  split rules (llama.cpp hashes a tokenization instead; without the `tokenizers`
  library we read the rules themselves, as Ollama does);
- `llama`: SentencePiece vocabularies, from tokenizer.model (a small protobuf
  reader here) or from a byte-fallback BPE tokenizer.json (Llama 2, Mistral);
- `bert`: WordPiece from tokenizer.json or vocab.txt, rewritten to llama.cpp's
  phantom-space form (`##x` -> `x`, `x` -> `▁x`).
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGUFWriter, TokenType

from pyollama.store.convert.errors import ConvertError
from pyollama.store.convert.sentencepiece import read_sentencepiece_pieces

# Ollama's message when no tokenizer file is usable.
UNKNOWN_TOKENIZER = "unknown tokenizer format"

SPECIAL_TYPES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")

# Written by key name: the installed gguf package may predate these two keys.
KEY_NORMALIZER_LOWERCASE = "tokenizer.ggml.normalizer.lowercase"
KEY_NORMALIZER_STRIP_ACCENTS = "tokenizer.ggml.normalizer.strip_accents"

PHANTOM_SPACE = "\u2581"

# The split rule byte-level BPE applies when ByteLevel has use_regex=true (GPT-2's).
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN35_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
DEEPSEEK_CODER_SPLITS = (r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", r"[一-龥ࠀ-一가-퟿]+", r"\p{N}")

# Sequence of split rules -> the llama.cpp pre-tokenizer implementing exactly those rules.
_PRE_TOKENIZERS: dict[tuple[str, ...], str] = {
    (GPT2_SPLIT,): "gpt-2",
    (r"\p{N}", GPT2_SPLIT): "smollm",
    (LLAMA3_SPLIT,): "llama-bpe",
    (QWEN2_SPLIT,): "qwen2",
    (QWEN35_SPLIT,): "qwen35",
    DEEPSEEK_CODER_SPLITS: "deepseek-coder",
}

_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")


class TokenizerError(ConvertError):
    """Tokenizer files that are missing, malformed or of a kind llama.cpp cannot run."""


@dataclass
class Vocab:
    """Everything the GGUF tokenizer section holds, ready to write."""

    model: str
    pre: str
    tokens: list[str]
    token_types: list[int]
    scores: list[float] | None = None
    merges: list[str] = field(default_factory=list)
    special_ids: dict[str, int] = field(default_factory=dict)
    add_special: dict[str, bool] = field(default_factory=dict)
    chat_template: str | list[dict[str, str]] | None = None
    add_space_prefix: bool | None = None
    normalizer_lowercase: bool | None = None
    normalizer_strip_accents: bool | None = None
    token_type_count: int | None = None

    def write(self, writer: GGUFWriter) -> None:
        writer.add_tokenizer_model(self.model)
        writer.add_tokenizer_pre(self.pre)
        if self.token_type_count is not None:
            writer.add_token_type_count(self.token_type_count)
        writer.add_token_list(self.tokens)
        if self.scores is not None:
            writer.add_token_scores(self.scores)
        writer.add_token_types(self.token_types)
        if self.merges:
            writer.add_token_merges(self.merges)
        for typ, token_id in self.special_ids.items():
            # cls has no GGUF key of its own in the current format (llama.cpp reads bos for BERT).
            if typ != "cls":
                getattr(writer, f"add_{typ}_token_id")(token_id)
        for typ, value in self.add_special.items():
            getattr(writer, f"add_add_{typ}_token")(value)
        if self.add_space_prefix is not None:
            writer.add_add_space_prefix(self.add_space_prefix)
        if self.chat_template is not None:
            writer.add_chat_template(self.chat_template)
        if self.normalizer_lowercase is not None:
            writer.add_bool(KEY_NORMALIZER_LOWERCASE, self.normalizer_lowercase)
        if self.normalizer_strip_accents is not None:
            writer.add_bool(KEY_NORMALIZER_STRIP_ACCENTS, self.normalizer_strip_accents)


# --- file helpers ---------------------------------------------------------------------------------


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, None when the file is absent; a clear error when it is not JSON."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerError(f"{path.name} is not valid JSON") from exc
    if not isinstance(data, dict):
        raise TokenizerError(f"{path.name} is not a JSON object")
    return data


def read_json_list(path: Path) -> list[Any] | None:
    """The JSON array in `path`, None when the file is absent."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerError(f"{path.name} is not valid JSON") from exc
    if not isinstance(data, list):
        raise TokenizerError(f"{path.name} is not a JSON array")
    return data


def _token_content(entry: Any) -> str | None:
    """A tokenizer_config `<t>_token` entry is a string or an AddedToken dict with `content`."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("content"), str):
        return str(entry["content"])
    return None


def looks_special(text: str) -> bool:
    """Tokens some models add without `special: true` though they are control tokens."""
    if text in ("<pad>", "<mask>", "<2mass>", "[@BOS@]"):
        return True
    for left, right in (("<|", "|>"), ("<｜", "｜>"), ("<unused", ">")):
        if text.startswith(left) and text.endswith(right):
            return True
    return False


def _added_tokens(tokenizer_json: dict[str, Any] | None) -> list[tuple[int, str, bool]]:
    """(id, content, special) of tokenizer.json's added_tokens, validated."""
    out: list[tuple[int, str, bool]] = []
    for entry in (tokenizer_json or {}).get("added_tokens") or []:
        if not isinstance(entry, dict):
            raise TokenizerError("tokenizer.json: added_tokens entry is not an object")
        token_id, content = entry.get("id"), entry.get("content")
        if not isinstance(token_id, int) or token_id < 0 or not isinstance(content, str):
            raise TokenizerError(f"tokenizer.json: bad added token {entry!r}")
        out.append((token_id, content, bool(entry.get("special"))))
    return out


def _model_vocab(tokenizer_json: dict[str, Any]) -> dict[str, int]:
    vocab = tokenizer_json.get("model", {}).get("vocab")
    if not isinstance(vocab, dict) or not all(isinstance(v, int) and v >= 0 for v in vocab.values()):
        raise TokenizerError("tokenizer.json: model.vocab must map tokens to non-negative ids")
    return vocab


def _table(n_vocab: int, entries: dict[str, int], what: str) -> tuple[list[str], list[int]]:
    """Token and type tables of n_vocab slots; slots no token claims become `[PAD<i>]` (unused)."""
    if entries and max(entries.values()) >= n_vocab:
        raise TokenizerError(
            f"{what} has token id {max(entries.values())} but the model's vocab_size is {n_vocab}"
        )
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [int(TokenType.UNUSED)] * n_vocab
    for text, token_id in entries.items():
        tokens[token_id] = text
        types[token_id] = int(TokenType.NORMAL)
    return tokens, types


def _apply_added_tokens(
    tokens: list[str], types: list[int], added: list[tuple[int, str, bool]], *, spm: bool
) -> None:
    for token_id, content, special in added:
        if token_id >= len(tokens):
            raise TokenizerError(
                f"added token {content!r} has id {token_id} but the model's vocab_size is {len(tokens)}"
            )
        if special or looks_special(content):
            types[token_id] = int(TokenType.CONTROL)
        else:
            # llama.cpp matches user-defined tokens on raw text; SentencePiece spells spaces as ▁.
            if spm:
                content = content.replace(PHANTOM_SPACE, " ")
            types[token_id] = int(TokenType.USER_DEFINED)
        tokens[token_id] = content


# --- special tokens, add_* flags, chat template --------------------------------------------------


def _special_tokens(
    src_dir: Path,
    tokenizer_json: dict[str, Any] | None,
    tokens: list[str],
    added: list[tuple[int, str, bool]],
) -> tuple[dict[str, int], dict[str, bool]]:
    """Special token ids and add_bos/add_eos/add_sep flags, the way llama.cpp's converter reads them.

    Names come from tokenizer_config.json (`bos_token`, ...), then the post-processor's
    template; ids from the added tokens, then the vocabulary, then config.json `<t>_token_id`.
    The post-processor decides add_bos/add_eos; tokenizer_config `add_<t>_token` fills gaps.
    """
    tok_config = read_json_object(src_dir / "tokenizer_config.json") or {}
    names: dict[str, str | None] = {
        typ: _token_content(tok_config.get(f"{typ}_token")) for typ in SPECIAL_TYPES
    }
    if names["bos"] is None and names["cls"] is not None:
        names["bos"] = names["cls"]
    if names["eos"] is None and names["sep"] is not None:
        names["eos"] = names["sep"]

    add: dict[str, bool] = {}
    post = (tokenizer_json or {}).get("post_processor")
    processors = post.get("processors", [post]) if isinstance(post, dict) else []
    for proc in processors:
        if not isinstance(proc, dict):
            continue
        kind = proc.get("type")
        if kind == "ByteLevel":
            add.setdefault("bos", False)
            add.setdefault("eos", False)
        elif kind == "RobertaProcessing":
            add.update(bos=True, eos=True, sep=True)
        elif kind == "TemplateProcessing":
            _read_template(proc, names, add)

    for typ in ("bos", "eos", "sep"):
        flag = tok_config.get(f"add_{typ}_token")
        if isinstance(flag, bool):
            add.setdefault(typ, flag)

    by_content: dict[str, int] = {}
    for token_id, content, _special in added:
        by_content.setdefault(content, token_id)
    in_vocab = {text: i for i, text in enumerate(tokens)}
    model_config = read_json_object(src_dir / "config.json") or {}
    ids: dict[str, int] = {}
    for typ in SPECIAL_TYPES:
        name = names[typ]
        found: Any = None
        if name is not None:
            found = by_content.get(name, in_vocab.get(name))
        if found is None:
            found = model_config.get(f"{typ}_token_id")
        if isinstance(found, int) and not isinstance(found, bool) and 0 <= found < len(tokens):
            ids[typ] = found
    return ids, add


def _read_template(proc: dict[str, Any], names: dict[str, str | None], add: dict[str, bool]) -> None:
    """add_bos/add_eos from a TemplateProcessing `single` template: `[BOS] $A [EOS]`-like."""
    single = proc.get("single")
    if not isinstance(single, list) or len(single) < 2:
        return
    first = single[0].get("SpecialToken", {}).get("id") if isinstance(single[0], dict) else None
    last = single[-1].get("SpecialToken", {}).get("id") if isinstance(single[-1], dict) else None
    if isinstance(first, str):
        if names["bos"] is None:
            names["bos"] = first
        add["bos"] = first in (names["bos"], names["cls"])
    if isinstance(last, str):
        if names["eos"] is None:
            names["eos"] = last
        add["eos"] = last == names["eos"]


def chat_template(src_dir: Path) -> str | list[dict[str, str]] | None:
    """tokenizer_config.json `chat_template` (string or named list), else chat_template.jinja/.json."""
    tok_config = read_json_object(src_dir / "tokenizer_config.json") or {}
    value: Any = tok_config.get("chat_template")
    if value is None:
        jinja = src_dir / "chat_template.jinja"
        if jinja.is_file():
            value = jinja.read_text(encoding="utf-8")
        else:
            value = (read_json_object(src_dir / "chat_template.json") or {}).get("chat_template")
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("template"), str)
        for t in value
    ):
        return [{"name": t["name"], "template": t["template"]} for t in value]
    return None


# --- byte-level BPE (gpt2) ------------------------------------------------------------------------


def split_rules(pre_tokenizer: Any) -> tuple[str, ...] | None:
    """The regex split rules a tokenizers pre-tokenizer applies, in order; None if it does more."""
    if pre_tokenizer is None:
        return ()
    if not isinstance(pre_tokenizer, dict):
        return None
    kind = pre_tokenizer.get("type")
    if kind == "Sequence":
        rules: list[str] = []
        for item in pre_tokenizer.get("pretokenizers") or []:
            sub = split_rules(item)
            if sub is None:
                return None
            rules.extend(sub)
        return tuple(rules)
    if kind == "Split":
        pattern = pre_tokenizer.get("pattern") or {}
        regex = pattern.get("Regex") if isinstance(pattern, dict) else None
        return (regex,) if isinstance(regex, str) else None
    if kind == "Digits":
        return (r"\p{N}",) if pre_tokenizer.get("individual_digits") else (r"\p{N}+",)
    if kind == "ByteLevel":
        return (GPT2_SPLIT,) if pre_tokenizer.get("use_regex", True) else ()
    return None


def pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    """The llama.cpp `tokenizer.ggml.pre` matching tokenizer.json's split rules, else "default"."""
    rules = split_rules(tokenizer_json.get("pre_tokenizer"))
    if rules is None:
        return "default"
    return _PRE_TOKENIZERS.get(rules, "default")


def _is_byte_level(tokenizer_json: dict[str, Any]) -> bool:
    def has_byte_level(node: Any) -> bool:
        if not isinstance(node, dict):
            return False
        if node.get("type") == "ByteLevel":
            return True
        children = node.get("pretokenizers") or node.get("decoders") or []
        return any(has_byte_level(c) for c in children)

    return has_byte_level(tokenizer_json.get("pre_tokenizer")) or has_byte_level(
        tokenizer_json.get("decoder")
    )


def _merges(tokenizer_json: dict[str, Any]) -> list[str]:
    """Merges as "a b" strings; the newer pair form may hold spaces, spelled U+0120 like llama.cpp."""
    merges = tokenizer_json.get("model", {}).get("merges") or []
    if not isinstance(merges, list):
        raise TokenizerError("tokenizer.json: model.merges is not a list")
    out: list[str] = []
    for merge in merges:
        if isinstance(merge, str):
            out.append(merge)
        elif isinstance(merge, list) and len(merge) == 2 and all(isinstance(p, str) for p in merge):
            out.append(" ".join(p.replace(" ", "\u0120") for p in merge))
        else:
            raise TokenizerError(f"tokenizer.json: bad merge {merge!r}")
    return out


def _gpt2_vocab(src_dir: Path, tokenizer_json: dict[str, Any], n_vocab: int) -> Vocab:
    tokens, types = _table(n_vocab, _model_vocab(tokenizer_json), "tokenizer.json")
    added = _added_tokens(tokenizer_json)
    _apply_added_tokens(tokens, types, added, spm=False)
    ids, add = _special_tokens(src_dir, tokenizer_json, tokens, added)
    return Vocab(
        model="gpt2",
        pre=pre_tokenizer_name(tokenizer_json),
        tokens=tokens,
        token_types=types,
        merges=_merges(tokenizer_json),
        special_ids=ids,
        add_special=add,
        chat_template=chat_template(src_dir),
    )


# --- SentencePiece (llama) ------------------------------------------------------------------------


def _spm_from_tokenizer_json(src_dir: Path, tokenizer_json: dict[str, Any], n_vocab: int) -> Vocab:
    """A byte-fallback BPE tokenizer.json (converted from SentencePiece) as a `llama` vocab.

    llama.cpp's SentencePiece tokenizer merges the adjacent pair whose joined token
    scores highest, so each token scores minus the rank of the merge that makes it:
    the pair merged first by the BPE model is merged first by llama.cpp too.
    """
    vocab = _model_vocab(tokenizer_json)
    tokens, types = _table(n_vocab, vocab, "tokenizer.json")
    merges = _merges(tokenizer_json)
    n_merges = len(merges)
    # Tokens no merge produces (single characters, bytes) never form a pair, so their score is moot;
    # they are ranked after every merge, in id order.
    scores = [-float(n_merges + i) for i in range(n_vocab)]
    for rank, merge in enumerate(merges):
        left, _, right = merge.partition(" ")
        token_id = vocab.get(left + right)
        if token_id is not None and scores[token_id] < -rank:
            scores[token_id] = -float(rank)
    for i, text in enumerate(tokens):
        if _BYTE_TOKEN.fullmatch(text):
            types[i] = int(TokenType.BYTE)
    unk = tokenizer_json.get("model", {}).get("unk_token")
    if isinstance(unk, str) and unk in vocab:
        types[vocab[unk]] = int(TokenType.UNKNOWN)
    added = _added_tokens(tokenizer_json)
    _apply_added_tokens(tokens, types, added, spm=True)
    ids, add = _special_tokens(src_dir, tokenizer_json, tokens, added)
    return Vocab(
        model="llama",
        pre="default",
        tokens=tokens,
        token_types=types,
        scores=scores,
        special_ids=ids,
        add_special=add,
        chat_template=chat_template(src_dir),
        add_space_prefix=_spm_adds_space_prefix(tokenizer_json),
    )


def _spm_adds_space_prefix(tokenizer_json: dict[str, Any]) -> bool:
    """Whether text gets a leading ▁: a Prepend normalizer or a Metaspace that prepends."""

    def walk(node: Any, key: str) -> list[dict[str, Any]]:
        if not isinstance(node, dict):
            return []
        children = node.get(key)
        if isinstance(children, list):
            return [leaf for child in children for leaf in walk(child, key)]
        return [node]

    for node in walk(tokenizer_json.get("normalizer"), "normalizers"):
        if node.get("type") == "Prepend" and node.get("prepend") == PHANTOM_SPACE:
            return True
    for node in walk(tokenizer_json.get("pre_tokenizer"), "pretokenizers"):
        if node.get("type") == "Metaspace":
            scheme = node.get("prepend_scheme")
            return bool(node.get("add_prefix_space", True)) if scheme is None else scheme != "never"
    return False


def _is_spm_bpe(tokenizer_json: dict[str, Any]) -> bool:
    model = tokenizer_json.get("model") or {}
    return bool(model.get("type") == "BPE" and model.get("byte_fallback")) and not _is_byte_level(
        tokenizer_json
    )


def parse_sentencepiece_model(data: bytes) -> list[tuple[str, float, int]]:
    """(piece, score, type) of each piece in a SentencePiece ModelProto (tokenizer.model)."""
    try:
        pieces = read_sentencepiece_pieces(data)
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise TokenizerError("tokenizer.model is not a valid SentencePiece model") from exc
    if not pieces:
        raise TokenizerError("tokenizer.model holds no pieces")
    return pieces


def _spm_from_model_file(src_dir: Path, n_vocab: int) -> Vocab:
    """tokenizer.model, with added_tokens.json and tokenizer_config added_tokens_decoder on top."""
    pieces = parse_sentencepiece_model((src_dir / "tokenizer.model").read_bytes())
    if len(pieces) > n_vocab:
        raise TokenizerError(
            f"tokenizer.model has {len(pieces)} pieces but the model's vocab_size is {n_vocab}"
        )
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    scores = [-1000.0] * n_vocab
    types = [int(TokenType.UNUSED)] * n_vocab
    for i, (piece, score, kind) in enumerate(pieces):
        tokens[i], scores[i], types[i] = piece, score, kind

    extra: list[tuple[int, str, bool]] = []
    added_json = read_json_object(src_dir / "added_tokens.json") or {}
    extra.extend((v, k, False) for k, v in added_json.items() if isinstance(v, int))
    tok_config = read_json_object(src_dir / "tokenizer_config.json") or {}
    decoder = tok_config.get("added_tokens_decoder") or {}
    if isinstance(decoder, dict):
        for key, entry in decoder.items():
            if str(key).isdigit() and isinstance(entry, dict) and isinstance(entry.get("content"), str):
                extra.append((int(key), entry["content"], bool(entry.get("special"))))
    _apply_added_tokens(tokens, types, extra, spm=True)
    for token_id, _content, _special in extra:
        scores[token_id] = -1000.0

    tokenizer_json = read_json_object(src_dir / "tokenizer.json")
    ids, add = _special_tokens(src_dir, tokenizer_json, tokens, _added_tokens(tokenizer_json) + extra)
    return Vocab(
        model="llama",
        pre="default",
        tokens=tokens,
        token_types=types,
        scores=scores,
        special_ids=ids,
        add_special=add,
        chat_template=chat_template(src_dir),
    )


def load_causal_vocab(src_dir: Path, n_vocab: int) -> Vocab:
    """A decoder's vocabulary: tokenizer.model first (like llama.cpp and Ollama), else tokenizer.json."""
    tokenizer_json = read_json_object(src_dir / "tokenizer.json")
    if (src_dir / "tokenizer.model").is_file():
        vocab = _spm_from_model_file(src_dir, n_vocab)
    elif tokenizer_json is not None:
        model_type = (tokenizer_json.get("model") or {}).get("type")
        if model_type != "BPE":
            raise TokenizerError(f"unsupported tokenizer.json model type {model_type!r}")
        if _is_spm_bpe(tokenizer_json):
            vocab = _spm_from_tokenizer_json(src_dir, tokenizer_json, n_vocab)
        else:
            vocab = _gpt2_vocab(src_dir, tokenizer_json, n_vocab)
    else:
        raise TokenizerError(UNKNOWN_TOKENIZER)
    tok_config = read_json_object(src_dir / "tokenizer_config.json") or {}
    if isinstance(tok_config.get("add_prefix_space"), bool):
        vocab.add_space_prefix = tok_config["add_prefix_space"]
    return vocab


# --- WordPiece (bert) -----------------------------------------------------------------------------


def _phantom(token: str, token_type: int) -> str:
    """llama.cpp's WPM vocab marks word starts instead of continuations: `##ing` -> `ing`, `the` -> `▁the`."""
    if token_type == TokenType.CONTROL:
        return token
    if token.startswith("##"):
        return token[2:]
    return PHANTOM_SPACE + token


def load_wordpiece_vocab(src_dir: Path, n_vocab: int, type_vocab_size: int) -> Vocab:
    """A BERT vocabulary from tokenizer.json (WordPiece) or vocab.txt, in llama.cpp's `bert` form."""
    tokenizer_json = read_json_object(src_dir / "tokenizer.json")
    tok_config = read_json_object(src_dir / "tokenizer_config.json") or {}
    lowercase: bool | None = None
    strip_accents: bool | None = None
    if tokenizer_json is not None:
        model_type = (tokenizer_json.get("model") or {}).get("type")
        if model_type != "WordPiece":
            raise TokenizerError(f"BERT models need a WordPiece tokenizer, tokenizer.json has {model_type!r}")
        entries = _model_vocab(tokenizer_json)
        added = _added_tokens(tokenizer_json)
        normalizer = tokenizer_json.get("normalizer")
        if isinstance(normalizer, dict) and normalizer.get("type") == "BertNormalizer":
            if isinstance(normalizer.get("lowercase"), bool):
                lowercase = normalizer["lowercase"]
            if isinstance(normalizer.get("strip_accents"), bool):
                strip_accents = normalizer["strip_accents"]
    elif (src_dir / "vocab.txt").is_file():
        lines = (src_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        entries = {}
        for i, line in enumerate(lines):
            entries.setdefault(line.rstrip("\r"), i)
        # Without tokenizer.json the special tokens are the ones tokenizer_config names.
        added = [
            (entries[name], name, True)
            for typ in ("unk", "sep", "pad", "cls", "mask")
            if (name := _token_content(tok_config.get(f"{typ}_token"))) is not None and name in entries
        ]
        if isinstance(tok_config.get("do_lower_case"), bool):
            lowercase = tok_config["do_lower_case"]
        if isinstance(tok_config.get("strip_accents"), bool):
            strip_accents = tok_config["strip_accents"]
    else:
        raise TokenizerError(UNKNOWN_TOKENIZER)

    tokens, types = _table(n_vocab, entries, "the vocabulary")
    _apply_added_tokens(tokens, types, added, spm=False)
    ids, add = _special_tokens(src_dir, tokenizer_json, tokens, added)
    tokens = [_phantom(t, k) if k != TokenType.UNUSED else t for t, k in zip(tokens, types)]
    return Vocab(
        model="bert",
        # llama.cpp only reads pre-tokenizer names for BPE vocabularies.
        pre="default",
        tokens=tokens,
        token_types=types,
        special_ids=ids,
        add_special=add,
        chat_template=chat_template(src_dir),
        normalizer_lowercase=lowercase,
        normalizer_strip_accents=strip_accents,
        token_type_count=type_vocab_size,
    )
