"""Hugging Face safetensors checkpoints -> GGUF, without torch or transformers.

`convert_safetensors_dir` is what /api/create runs for a safetensors upload
(status "converting model"). It reads config.json, picks the converter from
`architectures[0]` (Ollama's rule), and writes an F16 GGUF (F32 and BF16 on
request) that llama.cpp loads. Quantization to smaller types is llama.cpp's
job, afterwards (pyollama.llama.quantize).
"""

from __future__ import annotations

from pathlib import Path

from pyollama.store.convert.bert import ARCHITECTURES as BERT_ARCHITECTURES
from pyollama.store.convert.bert import plan_bert
from pyollama.store.convert.errors import ConvertError, UnsupportedArchitectureError
from pyollama.store.convert.llama import ARCHITECTURES as LLAMA_ARCHITECTURES
from pyollama.store.convert.llama import plan_llama
from pyollama.store.convert.safetensors import SafetensorsError, SafetensorsModel
from pyollama.store.convert.tokenizer import TokenizerError, read_json_object
from pyollama.store.convert.writer import OUT_TYPES, ConvertResult, HParams, ProgressCallback, write_gguf

SUPPORTED_ARCHITECTURES = frozenset(BERT_ARCHITECTURES) | frozenset(LLAMA_ARCHITECTURES)


def convert_safetensors_dir(
    src_dir: Path,
    out_path: Path,
    *,
    out_type: str = "F16",
    progress: ProgressCallback | None = None,
    name: str | None = None,
) -> ConvertResult:
    """Convert the checkpoint in `src_dir` (config.json, *.safetensors, tokenizer files) to a GGUF.

    out_type is "F16" (Ollama's choice), "F32" or "BF16": the type of the large
    weights; vectors, norms and position tables stay F32 as llama.cpp expects.
    `progress(done_tensors, total_tensors)` is called after each tensor is
    written. The GGUF appears at out_path only when complete (temp file + rename).
    `name` becomes general.name (default: config's `_name_or_path`, else the
    directory name). Raises ConvertError (400) for anything wrong with the input.
    """
    src_dir = Path(src_dir)
    out_path = Path(out_path)
    kind = out_type.upper()
    if kind not in OUT_TYPES:
        raise ConvertError(f"unsupported output type {out_type!r}; expected one of {', '.join(OUT_TYPES)}")
    if not src_dir.is_dir():
        raise ConvertError(f"{src_dir} is not a directory")
    config = read_json_object(src_dir / "config.json")
    if config is None:
        raise ConvertError("config.json not found")
    architectures = config.get("architectures")
    if not isinstance(architectures, list) or not architectures or not isinstance(architectures[0], str):
        raise ConvertError("config.json: architectures must be a non-empty list of names")
    architecture = architectures[0]
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedArchitectureError(architecture)

    hparams = HParams(config)
    checkpoint = SafetensorsModel.open_dir(src_dir)
    if architecture in BERT_ARCHITECTURES:
        plan = plan_bert(src_dir, hparams, checkpoint)
    else:
        plan = plan_llama(src_dir, hparams, checkpoint, architecture)
    return write_gguf(
        plan,
        out_path,
        out_type=kind,
        source_architecture=architecture,
        name=name or _default_name(config, src_dir),
        progress=progress,
    )


def _default_name(config: dict[str, object], src_dir: Path) -> str:
    path = config.get("_name_or_path")
    if isinstance(path, str) and path.strip("/"):
        return path.strip("/").rsplit("/", 1)[-1]
    return src_dir.resolve().name


__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "ConvertError",
    "ConvertResult",
    "SafetensorsError",
    "TokenizerError",
    "UnsupportedArchitectureError",
    "convert_safetensors_dir",
]
