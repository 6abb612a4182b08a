"""Pieces every architecture shares: the conversion plan, hyperparameter reading, GGUF output.

An architecture module turns a checkpoint into a `ModelPlan` (GGUF architecture,
vocabulary, a callback writing its hyperparameters, and the tensors with lazy
loaders); `write_gguf` streams that plan to disk one tensor at a time, so
memory stays near the size of the largest tensor, and publishes the file
atomically.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from pyollama.store.blobs import fsync_dir
from pyollama.store.convert.errors import ConvertError
from pyollama.store.convert.safetensors import SafetensorsModel
from pyollama.store.convert.tokenizer import Vocab, read_json_list, read_json_object

F32 = gguf.GGMLQuantizationType.F32
F16 = gguf.GGMLQuantizationType.F16
BF16 = gguf.GGMLQuantizationType.BF16

# out_type -> (tensor type of the large weights, general.file_type).
OUT_TYPES: dict[str, tuple[gguf.GGMLQuantizationType, gguf.LlamaFileType]] = {
    "F32": (F32, gguf.LlamaFileType.ALL_F32),
    "F16": (F16, gguf.LlamaFileType.MOSTLY_F16),
    "BF16": (BF16, gguf.LlamaFileType.MOSTLY_BF16),
}

# Weights llama.cpp expects in F32 whatever the file type (as its own converter and quantizer do).
_ALWAYS_F32 = frozenset(
    {
        "position_embd.weight",
        "token_types.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_inp_shexp.weight",
    }
)

Loader = Callable[[], "np.ndarray[Any, np.dtype[np.float32]]"]
ProgressCallback = Callable[[int, int], None]


@dataclass
class PlannedTensor:
    """One GGUF tensor: its name, numpy (row-major) shape and a loader of its float32 data."""

    name: str
    shape: tuple[int, ...]
    load: Loader


@dataclass
class ModelPlan:
    """What an architecture module produces; `write_gguf` turns it into a file."""

    arch: gguf.MODEL_ARCH
    vocab: Vocab
    write_hparams: Callable[[gguf.GGUFWriter], None]
    tensors: list[PlannedTensor]

    @property
    def arch_name(self) -> str:
        return gguf.MODEL_ARCH_NAMES[self.arch]


@dataclass
class ConvertResult:
    """The GGUF written by a conversion and the facts about it a caller reports."""

    path: Path
    architecture: str
    source_architecture: str
    file_type: str
    n_tensors: int
    n_params: int
    size: int
    tokenizer_model: str
    chat_template: str | None


class HParams:
    """config.json values with typed, clearly failing accessors."""

    def __init__(self, config: dict[str, Any]) -> None:
        # Multimodal configs nest the language model's settings; they win, as in llama.cpp's converter.
        text = config.get("text_config")
        self.values: dict[str, Any] = {**config, **text} if isinstance(text, dict) else dict(config)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def find(self, keys: Sequence[str]) -> Any:
        """The value of the first key present, or None."""
        for key in keys:
            if self.values.get(key) is not None:
                return self.values[key]
        return None

    def integer(self, keys: Sequence[str], *, default: int | None = None, minimum: int = 1) -> int:
        value = self.find(keys)
        if value is None:
            if default is not None:
                return default
            raise ConvertError(f"config.json: missing {keys[0]}")
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConvertError(f"config.json: {keys[0]} must be an integer >= {minimum}, got {value!r}")
        return value

    def optional_int(self, keys: Sequence[str]) -> int | None:
        return None if self.find(keys) is None else self.integer(keys)

    def number(self, keys: Sequence[str], *, default: float | None = None) -> float | None:
        value = self.find(keys)
        if value is None:
            return default
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ConvertError(f"config.json: {keys[0]} must be a number, got {value!r}")
        return float(value)


def tensor_qtype(name: str, n_dims: int, weight_type: gguf.GGMLQuantizationType) -> gguf.GGMLQuantizationType:
    """The stored type of a tensor: F32 for vectors, norms, biases and position tables; else weight_type."""
    if n_dims <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight"):
        return F32
    base = name.split(".", 2)[2] if name.startswith("blk.") else name
    return F32 if base in _ALWAYS_F32 else weight_type


def encode_tensor(data: np.ndarray[Any, Any], qtype: gguf.GGMLQuantizationType) -> np.ndarray[Any, Any]:
    """float32 data in the bytes of `qtype` (F32, F16 or BF16), C-contiguous."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    if qtype == F32:
        return data
    if qtype == F16:
        return data.astype(np.float16)
    bits = data.view(np.uint32)
    # Round to nearest even on the dropped 16 bits; NaNs stay NaN (quiet) instead of rounding to inf.
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(
        np.uint16
    )
    return np.where(np.isnan(data), np.uint16(0x7FC0), rounded).astype(np.uint16)


def map_tensors(
    st: SafetensorsModel,
    arch: gguf.MODEL_ARCH,
    n_layers: int,
    names: Iterable[tuple[str, str]],
    transform: Callable[[str, str, np.ndarray[Any, np.dtype[np.float32]]], np.ndarray[Any, Any]]
    | None = None,
) -> list[PlannedTensor]:
    """Plan GGUF tensors for (checkpoint name, name to map) pairs through gguf's tensor name map.

    `transform(gguf_name, source_name, data)` may rework the float32 data (the rope
    permutation of q/k, say); it must keep the shape.
    """
    name_map = gguf.get_tensor_name_map(arch, n_layers)
    planned: list[PlannedTensor] = []
    seen: dict[str, str] = {}
    for source, lookup in names:
        info = st.info(source)
        if info.dtype not in ("F32", "F16", "BF16", "F64"):
            raise ConvertError(
                f"tensor {source!r} has dtype {info.dtype}; only float checkpoints are supported"
            )
        target = name_map.get_name(lookup, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise ConvertError(f"cannot map tensor {source!r} of a {gguf.MODEL_ARCH_NAMES[arch]} model")
        if target in seen:
            raise ConvertError(f"tensors {seen[target]!r} and {source!r} both map to {target}")
        seen[target] = source
        planned.append(PlannedTensor(target, info.shape, _loader(st, source, target, transform)))
    return planned


def _loader(
    st: SafetensorsModel,
    source: str,
    target: str,
    transform: Callable[[str, str, np.ndarray[Any, np.dtype[np.float32]]], np.ndarray[Any, Any]] | None,
) -> Loader:
    def load() -> np.ndarray[Any, np.dtype[np.float32]]:
        data = st.load_float32(source)
        return data if transform is None else transform(target, source, data)

    return load


def require_tensors(planned: list[PlannedTensor], required: Iterable[str]) -> None:
    have = {t.name for t in planned}
    missing = [name for name in required if name not in have]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ConvertError(f"checkpoint is missing tensors: {shown}")


def write_gguf(
    plan: ModelPlan,
    out_path: Path,
    *,
    out_type: str,
    source_architecture: str,
    name: str,
    progress: ProgressCallback | None = None,
) -> ConvertResult:
    """Write `plan` as a GGUF at out_path, atomically: a temp file beside it, fsync, rename."""
    weight_type, file_type = OUT_TYPES[out_type]
    qtypes = [tensor_qtype(t.name, len(t.shape), weight_type) for t in plan.tensors]
    n_params = sum(math.prod(t.shape) for t in plan.tensors)

    writer = gguf.GGUFWriter(path=None, arch=plan.arch_name)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    if n_params > 0:
        writer.add_size_label(gguf.size_label(n_params, 0, 0, 0))
    plan.write_hparams(writer)
    writer.add_file_type(int(file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    plan.vocab.write(writer)
    for tensor, qtype in zip(plan.tensors, qtypes):
        itemsize = 4 if qtype == F32 else 2
        writer.add_tensor_info(
            tensor.name,
            tensor.shape,
            np.dtype(np.float32),
            math.prod(tensor.shape) * itemsize,
            raw_dtype=qtype,
        )

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=".convert-", suffix=".gguf.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer.write_header_to_file(path=tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        total = len(plan.tensors)
        for done, (tensor, qtype) in enumerate(zip(plan.tensors, qtypes), start=1):
            data = tensor.load()
            if data.shape != tensor.shape:
                raise ConvertError(
                    f"tensor {tensor.name}: shape {data.shape} where {tensor.shape} was planned"
                )
            writer.write_tensor_data(encode_tensor(data, qtype))
            if progress is not None:
                progress(done, total)
        writer.flush()
        assert writer.fout is not None
        os.fsync(writer.fout[0].fileno())
        writer.close()
        os.replace(tmp, out_path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(out_path.parent)

    template = plan.vocab.chat_template
    if isinstance(template, list):
        template = next((t["template"] for t in template if t["name"] == "default"), None)
    return ConvertResult(
        path=out_path,
        architecture=plan.arch_name,
        source_architecture=source_architecture,
        file_type=out_type,
        n_tensors=len(plan.tensors),
        n_params=n_params,
        size=out_path.stat().st_size,
        tokenizer_model=plan.vocab.model,
        chat_template=template,
    )


def sentence_transformers_pooling(src_dir: Path) -> gguf.PoolingType | None:
    """The pooling a sentence-transformers checkpoint declares (modules.json -> Pooling config), if any."""
    modules = read_json_list(src_dir / "modules.json") or []
    pooling_dir = next(
        (
            m.get("path")
            for m in modules
            if isinstance(m, dict)
            and str(m.get("type", "")).endswith("Pooling")
            and isinstance(m.get("path"), str)
        ),
        None,
    )
    if pooling_dir is None:
        return None
    rel = Path(pooling_dir)
    if rel.is_absolute() or ".." in rel.parts:
        raise ConvertError(f"modules.json: pooling path {pooling_dir!r} is outside the model directory")
    config = read_json_object(src_dir / rel / "config.json")
    if config is None:
        return None
    if config.get("pooling_mode_mean_tokens"):
        return gguf.PoolingType.MEAN
    if config.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    if config.get("pooling_mode_lasttoken"):
        return gguf.PoolingType.LAST
    modes = {"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS, "lasttoken": gguf.PoolingType.LAST}
    mode = config.get("pooling_mode")
    if isinstance(mode, str) and mode in modes:
        return modes[mode]
    raise ConvertError("only mean, cls and last-token pooling are supported")


def check_shape(planned: list[PlannedTensor], name: str, expected: tuple[int, ...]) -> None:
    """A clear error now instead of a load failure in llama.cpp later."""
    for tensor in planned:
        if tensor.name == name and tensor.shape != expected:
            raise ConvertError(
                f"tensor {name} has shape {list(tensor.shape)}, config.json implies {list(expected)}"
            )
