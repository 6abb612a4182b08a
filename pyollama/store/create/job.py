"""One create: prepare (every cheap check, no output), then work (yields progress), then the manifest.

Large outputs (merged splits, converted safetensors, quantized weights) are written in a work
directory under the models root and renamed into `blobs/` once hashed; small layers go through
`BlobStore.write_bytes`. A failure, or the client going away, removes the blobs this create added.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from pyollama.errors import BadRequestError, NotFoundError, PyollamaError
from pyollama.gguf import merge_splits
from pyollama.golang import json as gojson
from pyollama.store.blobs import fsync_dir, hash_file
from pyollama.store.create import draft as drafts
from pyollama.store.create import sources
from pyollama.store.create.quantize import (
    QUANTIZABLE_SOURCES,
    normalize_quantize,
    quantize_file,
    source_file_type,
)
from pyollama.store.create.request import (
    ERR_NO_SOURCE,
    ERR_QUANTIZE_SOURCE,
    CreateRequest,
    Pull,
    apply_info,
    check_file_map,
    check_template,
)
from pyollama.store.create.sources import GGUFFile, Planned, SplitSet, layer_status
from pyollama.store.leftovers import WORKDIR_PREFIX, hold_directory, sweep_leftovers
from pyollama.store.manifest import (
    CONFIG_MEDIA_TYPE,
    MEDIA_DRAFT,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_PROMPT,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    CorruptManifestError,
    Layer,
    Manifest,
)
from pyollama.store.names import ModelName
from pyollama.store.store import BlobHold, Store

log = logging.getLogger("pyollama.store.create")



def _progress(status: str, **extra: Any) -> dict[str, Any]:
    return {"status": status, **extra}


class _CreateJob:
    """One create: prepare (checks, no output), then work (yields progress)."""

    def __init__(
        self, store: Store, request: CreateRequest, *, prune: bool, pull: Pull | None, source_dir: Path | None
    ) -> None:
        self.store = store
        self.request = request
        self.prune = prune
        self.pull = pull
        self.source_dir = source_dir
        self.created: list[str] = []  # blobs this create added; removed again if it fails
        self.committed = False
        self.workdir: Path | None = None
        self.workdir_owner: IO[bytes] | None = None  # holds the work dir while this create lives
        self.hold: BlobHold | None = None  # every blob the new manifest will name, from the start

    # -- driver ---------------------------------------------------------------------------------

    def run(self) -> Iterator[dict[str, Any]]:
        try:
            with self.store.holding() as self.hold:
                yield from self._run()
        except BaseException:
            # GeneratorExit included: a client that went away leaves no trace.
            if not self.committed:
                self._discard_created()
            raise
        finally:
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
            if self.workdir_owner is not None:
                self.workdir_owner.close()

    def _discard_created(self) -> None:
        if not self.created:
            return
        try:
            self.store.remove_unused_blobs(set(self.created))
        except OSError as exc:
            log.warning("could not remove the blobs of a failed create: %s", exc)

    def _run(self) -> Iterator[dict[str, Any]]:
        req = self.request
        store = self.store
        sweep_leftovers(store.root)  # what killed creates left, not what live ones hold
        target = store.canonical(ModelName.parse(req.model))
        uploads = [*(req.files or {}).values(), *(req.adapters or {}).values(), *(req.draft_files or {}).values()]
        for digest in uploads:
            if isinstance(digest, str):
                self._hold(digest)  # before they are read: a delete elsewhere keeps them
        if req.draft_quantize and not req.draft_files:
            raise BadRequestError(drafts.ERR_DRAFT_QUANTIZE_NO_DRAFT)
        want = normalize_quantize(req.quantize) if req.quantize else None
        want_draft = normalize_quantize(req.draft_quantize) if req.draft_quantize else None
        if req.template:
            check_template(req.template)

        # Prepare: the base layers, checked but not yet written.
        base_config: dict[str, Any] = {}
        gguf_files: list[GGUFFile] = []
        splits: list[SplitSet] = []
        safetensors: dict[str, str] | None = None
        base: list[Planned] = []
        if self.source_dir is not None:
            safetensors = {}
        elif req.from_:
            base_name = ModelName.parse(req.from_)
            found = store.resolve(base_name)
            if found is None:
                if self.pull is None:
                    raise NotFoundError(f"model '{base_name.display}' not found")
                yield from self.pull(base_name)
                found = store.resolve(base_name)
                if found is None:
                    raise NotFoundError(f"model '{base_name.display}' not found")
            base, base_config = sources.from_model(store, found)
            present = [self._hold(p.layer.digest) for p in base]  # every one held, then checked
            if not all(present):
                raise NotFoundError(f"model '{base_name.display}' not found")  # deleted meanwhile
        elif req.files is not None:
            files = check_file_map(req.files)
            kind = sources.detect_type(store, files)
            if kind == "safetensors":
                safetensors = files
                sources.check_safetensors(store, files)
            else:
                gguf_files, splits = sources.gguf_files(store, files)
        else:
            raise BadRequestError(ERR_NO_SOURCE)
        draft = drafts.read_draft(store, req.draft_files) if req.draft_files is not None else None
        adapters = sources.adapters(store, req.adapters) if req.adapters is not None else []

        model_info = sources.model_info(base, gguf_files, splits)
        if draft is not None:
            model_digests = {p.layer.digest for p in base if p.layer.media_type == MEDIA_MODEL}
            model_digests.update(e.digest for e in gguf_files if e.media_type == MEDIA_MODEL)
            if draft.single is not None and draft.single.digest in model_digests:
                raise BadRequestError(drafts.ERR_DRAFT_IS_MODEL)
            if want_draft is not None:
                drafts.check_draft_quantize(draft.info, want_draft)
            if model_info is not None:
                drafts.check_vocab(model_info, draft.info)  # after a conversion, below, otherwise
        if model_info is not None and adapters:
            for adapter in adapters:
                arch = adapter.info.architecture if adapter.info is not None else ""
                if arch and model_info.architecture and arch != model_info.architecture:
                    raise BadRequestError(
                        f'adapter architecture "{arch}" does not match model architecture '
                        f'"{model_info.architecture}"'
                    )
        if model_info is not None:
            source_type = source_file_type(model_info)
        else:
            # Conversion writes F16; a base without a GGUF model layer has nothing to quantize.
            source_type = "F16" if safetensors is not None else "unknown"
        if want is not None and source_type != want and source_type not in QUANTIZABLE_SOURCES:
            raise BadRequestError(ERR_QUANTIZE_SOURCE)

        # Work: the large outputs first, each reported as it happens.
        planned: list[Planned] = list(base)
        for entry in gguf_files:
            yield _progress("parsing GGUF")
            planned.append(
                Planned(
                    Layer(entry.media_type, entry.digest, entry.path.stat().st_size),
                    layer_status(True, entry.digest),
                    entry.info,
                )
            )
        for split in splits:
            for _ in split.parts:
                yield _progress("parsing GGUF")
            planned.append(self._merge(split))
        if safetensors is not None:
            yield _progress("converting model")
            converted = self._convert(safetensors)
            if draft is not None and converted.info is not None:
                drafts.check_vocab(converted.info, draft.info)
            planned.append(converted)
        new_draft: Planned | None = None
        if draft is not None:  # Ollama reads the draft files after the model's
            for _ in draft.files:
                yield _progress("parsing GGUF")
            new_draft = self._draft_layer(draft)
        for item in planned:
            if item.layer.media_type == MEDIA_MODEL and not item.layer.from_:
                sources.check_loadable(store.blobs.path(item.layer.digest), req.model)
        if draft is not None and new_draft is not None:
            sources.check_loadable(store.blobs.path(new_draft.layer.digest), f"DRAFT {draft.name}")
        # Model layers first (Ollama keeps file order; a stable order keeps digests stable).
        planned.sort(key=lambda p: p.layer.media_type != MEDIA_MODEL)
        planned.extend(adapters)
        if new_draft is not None:
            # A new draft replaces the one a `from` model has; after the adapters, as Ollama orders them.
            planned = [p for p in planned if p.layer.media_type != MEDIA_DRAFT] + [new_draft]

        if want is not None:
            for i, item in enumerate(planned):
                if item.layer.media_type == MEDIA_MODEL and item.info is not None:
                    current = source_file_type(item.info)
                    if current != want:
                        planned[i] = yield from self._quantize(item, current, want)
        if want_draft is not None:
            for i, item in enumerate(planned):
                if item.layer.media_type == MEDIA_DRAFT and item.info is not None and not item.layer.from_:
                    current = source_file_type(item.info)
                    if current != want_draft:
                        planned[i] = yield from self._quantize(item, current, want_draft)

        planned = self._metadata_layers(planned)
        config = self._config(planned, base_config)
        config_digest, config_size, _ = self._write_small(gojson.encode(config, sort_keys=False))
        manifest = Manifest(
            config=Layer(CONFIG_MEDIA_TYPE, config_digest, config_size), layers=[p.layer for p in planned]
        )
        for item in planned:
            yield _progress(item.status)

        yield _progress("writing manifest")
        store.replace_manifest(target, manifest.to_bytes(), manifest, prune=self.prune)
        self.committed = True
        yield _progress("success")

    # -- large outputs --------------------------------------------------------------------------

    def _work(self) -> Path:
        if self.workdir is None:
            self.store.root.mkdir(parents=True, exist_ok=True)
            self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=self.store.root))
            self.workdir_owner = hold_directory(self.workdir)
        return self.workdir

    def _adopt(self, path: Path, media_type: str) -> Planned:
        """Move a finished file from the work dir into blobs/ under its digest."""
        digest, size = hash_file(path)
        target = self.store.blobs.path(digest)
        existed = self._hold(digest)
        if not existed:
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(path, 0o644)
            self.store.blobs.dir.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            fsync_dir(self.store.blobs.dir)
            self.created.append(digest)
        info = self.store.gguf_info(target)
        return Planned(Layer(media_type, digest, size), layer_status(existed, digest), info)

    def _merge(self, split: SplitSet, media_type: str = MEDIA_MODEL) -> Planned:
        out = self._work() / f"merged-{media_type.rsplit('.', 1)[-1]}.gguf"
        merge_splits([(p.path, p.layout) for p in split.parts], out)
        return self._adopt(out, media_type)

    def _draft_layer(self, draft: drafts.DraftSource) -> Planned:
        """The draft layer: the uploaded blob itself, or the split set merged."""
        if draft.split is not None:
            return self._merge(draft.split, MEDIA_DRAFT)
        assert draft.single is not None
        entry = draft.single
        layer = Layer(MEDIA_DRAFT, entry.digest, entry.path.stat().st_size)
        return Planned(layer, layer_status(True, entry.digest), entry.info)

    def _convert(self, files: Mapping[str, str]) -> Planned:
        from pyollama.store.convert import convert_safetensors_dir

        work = self._work()
        if self.source_dir is not None:
            src = self.source_dir
        else:
            src = work / "src"
            for name, digest in files.items():
                _materialize(self.store.blobs.path(digest), src / name)
        out = work / "model.gguf"
        convert_safetensors_dir(src, out, out_type="F16")
        return self._adopt(out, MEDIA_MODEL)

    def _quantize(self, item: Planned, current: str, want: str) -> Generator[dict[str, Any], None, Planned]:
        media_type = item.layer.media_type
        out = self._work() / f"quantized-{media_type.rsplit('.', 1)[-1]}-{want}.gguf"
        yield from quantize_file(self.store.blobs.path(item.layer.digest), out, current, want, item.layer.size)
        yield _progress("verifying conversion")
        quantized = self._adopt(out, media_type)
        got = source_file_type(quantized.info) if quantized.info is not None else "unknown"
        if got != want:
            raise PyollamaError(f"quantization to {want} produced a {got} model")
        return quantized

    # -- metadata layers and config -------------------------------------------------------------

    def _write_small(self, data: bytes) -> tuple[str, int, bool]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        existed = self._hold(digest)
        if not existed:
            self.store.blobs.write_bytes(data)
            self.created.append(digest)
        return digest, len(data), existed

    def _small_layer(self, media_type: str, data: bytes) -> Planned:
        digest, size, existed = self._write_small(data)
        return Planned(Layer(media_type, digest, size), layer_status(existed, digest))

    def _metadata_layers(self, planned: list[Planned]) -> list[Planned]:
        """Ollama's setTemplate/setSystem/setLicense/setParameters/setMessages, in that order."""
        req = self.request

        def without(*media: str) -> list[Planned]:
            return [p for p in planned if p.layer.media_type not in media]

        if req.template:
            planned = without(MEDIA_TEMPLATE, MEDIA_PROMPT) + [
                self._small_layer(MEDIA_TEMPLATE, req.template.encode("utf-8"))
            ]
        if req.system:
            planned = without(MEDIA_SYSTEM) + [self._small_layer(MEDIA_SYSTEM, req.system.encode("utf-8"))]
        for text in req.license:
            if text:
                planned.append(self._small_layer(MEDIA_LICENSE, text.encode("utf-8")))
        params = dict(req.parameters)
        for item in planned:
            if item.layer.media_type == MEDIA_PARAMS:
                for key, value in self._read_params(item.layer.digest).items():
                    params.setdefault(key, value)
        if params:
            planned = without(MEDIA_PARAMS) + [
                self._small_layer(MEDIA_PARAMS, gojson.encode(params))
            ]
        if req.messages:
            planned = without(MEDIA_MESSAGES) + [
                self._small_layer(MEDIA_MESSAGES, gojson.encode(req.messages, sort_keys=False))
            ]
        return planned

    def _read_params(self, digest: str) -> dict[str, Any]:
        try:
            value = json.loads(self.store.blobs.path(digest).read_bytes())
        except (OSError, ValueError) as exc:
            raise CorruptManifestError(f"params layer {digest} is unreadable: {exc}") from None
        if not isinstance(value, dict):
            raise CorruptManifestError(f"params layer {digest} is not a JSON object")
        return value

    def _config(self, planned: list[Planned], base: Mapping[str, Any]) -> dict[str, Any]:
        req = self.request
        model = next((p.info for p in planned if p.layer.media_type == MEDIA_MODEL and p.info), None)
        families: list[str] = []
        for item in planned:
            if item.info is not None and item.layer.media_type in (MEDIA_MODEL, MEDIA_PROJECTOR):
                arch = item.info.architecture
                if arch and arch not in families:
                    families.append(arch)
        if model is not None:
            family = model.architecture
            model_type = model.parameter_size
            file_type = source_file_type(model)
        else:
            family = str(base.get("model_family", ""))
            model_type = str(base.get("model_type", ""))
            file_type = str(base.get("file_type", ""))
            inherited = base.get("model_families")
            families = (
                [f for f in inherited if isinstance(f, str)] if isinstance(inherited, list) else families
            )
        config: dict[str, Any] = {
            "model_format": base.get("model_format") or "gguf",
            "model_family": family,
            "model_families": families or None,
            "model_type": model_type,
            "file_type": file_type,
        }
        for key in ("renderer", "parser", "requires"):
            value = getattr(req, key) or base.get(key)
            if value:
                config[key] = value
        capabilities = base.get("capabilities")
        if isinstance(capabilities, list) and capabilities:
            config["capabilities"] = capabilities
        apply_info(config, req.info)
        draft = next((p.info for p in planned if p.layer.media_type == MEDIA_DRAFT and p.info), None)
        if draft is not None:
            # Ollama's model.Draft; its tensor_prefix and config are for drafts built into the model.
            config["draft"] = {"model_format": "gguf", "architecture": draft.architecture}
        config["architecture"] = "amd64"
        config["os"] = "linux"
        config["rootfs"] = {"type": "layers", "diff_ids": [p.layer.digest for p in planned]}
        return config

    def _hold(self, digest: str) -> bool:
        """Keep `digest` from garbage collection until this create ends; whether it exists."""
        assert self.hold is not None
        return self.hold.add(digest)


def _materialize(blob: Path, dest: Path) -> None:
    """Give a blob its upload name for the converter: a hard link, else a copy (another filesystem)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(blob, dest)
    except OSError:
        shutil.copyfile(blob, dest)


def create_model(
    store: Store,
    request: CreateRequest,
    *,
    prune: bool = True,
    pull: Pull | None = None,
    source_dir: Path | None = None,
) -> Iterator[dict[str, Any]]:
    """Create (or replace) `request.model`, yielding Ollama's progress objects; ends with `success`.

    `pull(name)` fetches a `from` model that is not in the store, yielding its own progress
    (without it a missing `from` model is a 404). `prune` removes the blobs only the replaced
    manifest used (OLLAMA_NOPRUNE unset). `source_dir` converts a local safetensors directory
    instead of uploaded `files` (bundled models). Errors are PyollamaError subclasses with
    their HTTP status; everything checkable is checked before the first object.
    """
    job = _CreateJob(store, request, prune=prune, pull=pull, source_dir=source_dir)
    return job.run()
