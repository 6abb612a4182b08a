"""Pushing a model: Ollama's `PushModel`, also to plain Docker/OCI registries.

Push (Ollama's `PushModel`, reference §3.4): per layer a HEAD skips blobs the repository has;
otherwise a cross-repository mount is tried (from the layer's `from`, or from another
repository on the same registry that holds the blob locally), then the standard upload:
POST, sequential PATCH chunks (resumed from the registry's upload status after a broken
connection), PUT with the digest. The manifest goes last.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urlencode

import requests

from pyollama.errors import BadRequestError, NotFoundError, PyollamaError, RegistryError
from pyollama.store.manifest import MANIFEST_MEDIA_TYPE, Layer, Manifest
from pyollama.store.names import ModelName
from pyollama.store.progress import run_with_progress
from pyollama.store.registry.auth import RegistryAuth
from pyollama.store.registry.client import (
    RegistryCanceledError,
    RegistryClient,
    RegistryConnectionError,
    error_text,
)
from pyollama.store.registry.transfer import (
    Progress,
    TransferOptions,
    layer_status,
    open_client,
    os_errors_as_registry_errors,
    unique_layers,
)
from pyollama.store.store import Store


class _FileSlice:
    """`length` bytes of a file from `offset`, as a request body; counts what was read."""

    def __init__(self, path: Path, offset: int, length: int, on_read: Callable[[int], None],
                 stop: threading.Event) -> None:
        # Closed by close(): requests reads the body after this constructor returns.
        self._file = open(path, "rb")  # noqa: SIM115
        self._file.seek(offset)
        self._left = length
        self._length = length
        self._on_read = on_read
        self._stop = stop

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._stop.is_set():
            raise RegistryCanceledError()
        if size < 0 or size > self._left:
            size = self._left
        data = self._file.read(size)
        self._left -= len(data)
        self._on_read(len(data))
        return data

    def close(self) -> None:
        self._file.close()


class _Uploader:
    """Uploads one blob through the standard session flow; `completed` is for progress."""

    def __init__(self, client: RegistryClient, path: Path, layer: Layer, location: str,
                 opts: TransferOptions) -> None:
        self.client = client
        self.path = path
        self.layer = layer
        self.location = location
        self.opts = opts
        self.confirmed = 0  # bytes the registry acknowledged
        self.in_flight = 0  # bytes of the current chunk read so far
        self.lock = threading.Lock()

    def completed(self) -> int:
        with self.lock:
            return min(self.confirmed + self.in_flight, self.layer.size)

    def _count(self, n: int) -> None:
        with self.lock:
            self.in_flight += n

    def _next_location(self, resp: requests.Response) -> None:
        loc = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location")
        if loc:
            self.location = self.client.resolve(loc)

    def run(self, stop: threading.Event) -> None:
        total = self.layer.size
        chunk = max(self.opts.upload_chunk_size, 1)
        failures = 0
        while self.confirmed < total:
            start = self.confirmed
            end = min(start + chunk, total)
            bodies: list[_FileSlice] = []

            def body(start: int = start, end: int = end, bodies: list[_FileSlice] = bodies) -> _FileSlice:
                with self.lock:
                    self.in_flight = 0
                piece = _FileSlice(self.path, start, end - start, self._count, stop)
                bodies.append(piece)
                return piece

            headers = {"Content-Type": "application/octet-stream", "Content-Range": f"{start}-{end - 1}"}
            try:
                resp = self.client.request("PATCH", self.location, headers=headers, body=body, retry=False)
            except RegistryConnectionError:
                failures += 1
                if failures > self.opts.max_retries:
                    raise
                if stop.wait(self.opts.retry_backoff * (2 ** (failures - 1))):
                    raise RegistryCanceledError() from None
                self._resync()
                continue
            finally:
                for piece in bodies:
                    piece.close()
            with resp:
                if resp.status_code == 416:
                    # The registry has a different amount than we think: ask it where we are.
                    self._resync()
                    continue
                if resp.status_code >= 400:
                    raise RegistryError(f"http status {resp.status_code}: {error_text(resp).split(': ', 1)[-1]}")
                self._next_location(resp)
            with self.lock:
                self.confirmed, self.in_flight = end, 0
            failures = 0
        self._commit()

    def _resync(self) -> None:
        """Ask the upload session how many bytes it holds (GET -> 204, `Range: 0-<last>`)."""
        resp = self.client.request("GET", self.location)
        with resp:
            if resp.status_code >= 400:
                raise RegistryError(error_text(resp))
            self._next_location(resp)
            held = resp.headers.get("Range", "")
            last = held.rsplit("-", 1)[-1] if "-" in held else ""
        with self.lock:
            self.confirmed = int(last) + 1 if last.isdigit() else 0
            self.in_flight = 0

    def _commit(self) -> None:
        sep = "&" if "?" in self.location else "?"
        url = f"{self.location}{sep}{urlencode({'digest': self.layer.digest})}"
        resp = self.client.request("PUT", url, headers={"Content-Type": "application/octet-stream",
                                                        "Content-Length": "0"})
        with resp:
            if resp.status_code >= 400:
                raise RegistryError(f"http status {resp.status_code}: {error_text(resp).split(': ', 1)[-1]}")
            announced = resp.headers.get("Docker-Content-Digest")
            if announced and announced != self.layer.digest:
                raise RegistryError(f"digest mismatch, want {self.layer.digest}, registry has {announced}")


def _start_upload(client: RegistryClient, digest: str, mount_from: list[str]) -> str | None:
    """Try a cross-repository mount; None when mounted, else the upload session URL."""
    base = client.url("blobs/uploads/")
    for source in mount_from:
        resp = client.request("POST", base + "?" + urlencode({"mount": digest, "from": source}), retry=True)
        with resp:
            if resp.status_code == 201:
                return None
            if resp.status_code == 202:
                loc = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location")
                if loc:
                    # Not mountable from there; the registry opened a normal session instead.
                    return client.resolve(loc)
            elif resp.status_code >= 400:
                raise RegistryError(error_text(resp))
    resp = client.request("POST", base, retry=True)
    with resp:
        if resp.status_code >= 400:
            raise RegistryError(error_text(resp))
        loc = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location")
    if resp.status_code != 202 or not loc:
        raise RegistryError(f"http status {resp.status_code}: registry did not open an upload session")
    return client.resolve(loc)


def _push_blob(client: RegistryClient, store: Store, layer: Layer, mount_from: list[str],
               opts: TransferOptions, cancel: threading.Event | None) -> Iterator[Progress]:
    status = layer_status("pushing", layer.digest)
    done = Progress(status, layer.digest, layer.size, layer.size)
    resp = client.request("HEAD", client.url(f"blobs/{layer.digest}"))
    resp.close()
    if resp.status_code == 200:
        yield done
        return
    if resp.status_code != 404:
        raise RegistryError(f"{resp.status_code}: HEAD blob {layer.digest}")
    path = store.blobs.path(layer.digest)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise RegistryError(f'blob "{layer.digest}" not found') from None
    if size != layer.size:
        raise RegistryError(f"blob {layer.digest} is {size} bytes, the manifest says {layer.size}")
    location = _start_upload(client, layer.digest, mount_from)
    if location is None:
        yield done
        return
    uploader = _Uploader(client, path, layer, location, opts)

    def report() -> Progress:
        return Progress(status, layer.digest, layer.size, uploader.completed())

    try:
        yield from run_with_progress(uploader.run, report, opts.progress_interval, cancel=cancel,
                                     canceled=RegistryCanceledError, changed=Progress.to_json,
                                     thread_name="pyollama-transfer")
    except BaseException:
        # Best effort: free the registry's session; the error being raised is what matters.
        try:
            client.request("DELETE", uploader.location, retry=False).close()
        except PyollamaError:
            pass
        raise
    yield done


def _mount_sources(store: Store, name: ModelName) -> dict[str, list[str]]:
    """digest -> other repositories on the same registry whose local manifests hold it."""
    out: dict[str, list[str]] = {}
    for entry in store.list_models():
        if entry.name.host.lower() != name.host.lower() or entry.name.repository == name.repository:
            continue
        for digest in entry.manifest.digests():
            repos = out.setdefault(digest, [])
            if entry.name.repository not in repos:
                repos.append(entry.name.repository)
    return out


def push_model(
    store: Store,
    name: ModelName,
    *,
    insecure: bool = False,
    cancel: threading.Event | None = None,
    auth: RegistryAuth | None = None,
    options: TransferOptions | None = None,
) -> Iterator[Progress]:
    """Push the local model `name` to its registry, yielding Ollama's progress lines."""
    with os_errors_as_registry_errors():
        yield from _push(store, name, insecure, cancel, auth, options or TransferOptions())


def _push(store: Store, name: ModelName, insecure: bool, cancel: threading.Event | None,
          auth: RegistryAuth | None, opts: TransferOptions) -> Iterator[Progress]:
    with closing(open_client(name, insecure, auth, opts, cancel)) as client:
        yield Progress("retrieving manifest")
        try:
            found = store.resolve(name)
            if found is None:
                raise NotFoundError(f"model '{name.display}' not found")
            raw = store.read_manifest_bytes(found)
            manifest = Manifest.from_bytes(raw)
        except NotFoundError:
            # the client's mistake: 404 (Ollama answers 500), after the same status line
            yield Progress("couldn't retrieve manifest")
            raise
        except (PyollamaError, ValueError, OSError) as exc:
            yield Progress("couldn't retrieve manifest")
            raise RegistryError(str(exc)) from None
        local_sources = _mount_sources(store, name)
        for layer in unique_layers(manifest):
            sources = []
            if layer.from_:
                try:
                    sources.append(ModelName.parse(layer.from_).repository)
                except BadRequestError:
                    pass
            sources += [repo for repo in local_sources.get(layer.digest, []) if repo not in sources]
            # One mount attempt: each failed one leaves an upload session open at the registry.
            yield from _push_blob(client, store, layer, sources[:1], opts, cancel)

        yield Progress("pushing manifest")
        resp = client.request("PUT", client.url(f"manifests/{name.tag}"),
                              headers={"Content-Type": manifest.media_type or MANIFEST_MEDIA_TYPE},
                              body=lambda: raw)
        with resp:
            if resp.status_code >= 400:
                raise RegistryError(error_text(resp))
        yield Progress("success")
