"""The scheduler: which models are loaded, for how long, and with which load-time options.

Runners are keyed by the model's manifest digest. A request acquires a runner
(loading it, or reloading it when its load-time options changed) and releases
it when done; the keep-alive timer starts when the last request releases it.
At most `max_loaded_models` runners stay loaded: an idle one is evicted to
make room, the one that expires first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pyollama.engine.base import RunnerBase
from pyollama.engine.runner import Runner
from pyollama.errors import ServerBusyError
from pyollama.options import RunnerOptions

if TYPE_CHECKING:
    from pyollama.config import Config
    from pyollama.store.model import ModelRecord

log = logging.getLogger("pyollama.scheduler")

FOREVER = timedelta(days=365 * 292)


@dataclass
class LoadedModel:
    name: str
    record: ModelRecord
    size: int
    size_vram: int
    expires_at: datetime
    context_length: int
    repack: bool
    flash_attention: str


@dataclass
class _Entry:
    record: ModelRecord
    runner: RunnerBase
    options: RunnerOptions
    keep_alive: float
    refs: int = 0
    expires_at: float = 0.0        # monotonic time; inf = never; set when refs drops to 0
    timer: threading.Timer | None = None


def _needs_reload(loaded: RunnerOptions, wanted: RunnerOptions, defaults: RunnerOptions) -> bool:
    """Ollama's needsReload: any load-time difference, except 'auto' values that accept what is loaded."""
    for f in dataclasses.fields(RunnerOptions):
        want, have = getattr(wanted, f.name), getattr(loaded, f.name)
        if f.name == "num_gpu" and want < 0:
            continue
        if want == getattr(defaults, f.name) and f.name in ("num_ctx", "num_batch"):
            continue
        if want != have:
            return True
    return False


class Scheduler:
    def __init__(self, config: Config, *, runner_factory: Callable[..., RunnerBase] | None = None) -> None:
        self.config = config
        self._factory = runner_factory or _default_factory(config)
        self._entries: dict[str, _Entry] = {}
        self._cond = threading.Condition()
        self._waiting = 0
        self._loading: set[str] = set()  # digests being loaded right now (the lock is released meanwhile)
        # models whose runner crashed in its first decode with the CPU's extra buffer types:
        # loaded without them from then on (while config.repack is automatic)
        self._without_repack: set[str] = set()
        self._closed = False

    @property
    def default_options(self) -> RunnerOptions:
        return RunnerOptions(num_ctx=self.config.context_length)

    @contextlib.contextmanager
    def acquire(self, record: ModelRecord, options: RunnerOptions, keep_alive: float | None) -> Iterator[RunnerBase]:
        entry = self._acquire(record, options, keep_alive)
        try:
            yield entry.runner
        finally:
            self._release(entry)

    def _acquire(self, record: ModelRecord, options: RunnerOptions, keep_alive: float | None) -> _Entry:
        key = record.digest
        with self._cond:
            if self._waiting >= self.config.max_queue:
                raise ServerBusyError()
            self._waiting += 1
            try:
                while True:
                    if key in self._loading:
                        self._cond.wait(timeout=1.0)
                        continue
                    entry = self._entries.get(key)
                    if entry is not None and not entry.runner.alive:
                        self._detach_locked(key)
                        continue
                    if entry is not None and not _needs_reload(entry.options, options, self.default_options):
                        break
                    if entry is not None and entry.refs == 0:
                        self._unload_locked(key)
                        continue
                    if entry is None and len(self._entries) < self.config.max_loaded_models:
                        entry = self._load_locked(record, options, keep_alive)
                        break
                    if entry is None and self._evict_one_locked():
                        continue
                    self._cond.wait(timeout=1.0)
            finally:
                self._waiting -= 1
            entry.refs += 1
            if keep_alive is not None:
                entry.keep_alive = keep_alive
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
            return entry

    def _load_locked(self, record: ModelRecord, options: RunnerOptions, keep_alive: float | None) -> _Entry:
        assert record.model_path is not None
        cfg = self.config
        embedding = "embedding" in record.capabilities() and "completion" not in record.capabilities()
        projector = str(record.projector_paths[0]) if record.projector_paths and not embedding else None
        # A different draft is a different manifest, so a different digest: reloads need nothing more.
        draft = str(record.draft_path) if record.draft_path is not None and not embedding else None
        # Loading happens with the lock released so other models keep serving.
        self._loading.add(record.digest)
        self._cond.release()
        try:
            runner = self._factory(
                str(record.model_path),
                options,
                num_parallel=1 if embedding else cfg.num_parallel,
                max_queue=cfg.max_queue,
                flash_attention=cfg.flash_attention,
                measure_attention=cfg.measure_attention,
                kv_cache_type=cfg.kv_cache_type or "f16",
                embedding_only=embedding,
                n_threads=cfg.num_threads,
                adapters=[str(p) for p in record.adapter_paths],
                projector=projector,
                draft_model=draft,
                repack=self._repack_for(record.digest),
            )
        finally:
            self._cond.acquire()
            self._loading.discard(record.digest)
            self._cond.notify_all()
        entry = _Entry(
            record=record,
            runner=runner,
            options=options,
            keep_alive=cfg.keep_alive if keep_alive is None else keep_alive,
        )
        old = self._entries.pop(record.digest, None)
        if old is not None and old.refs == 0:
            old.runner.close()
        self._entries[record.digest] = entry
        log.info("loaded model %s (%s) in %.2fs", record.name.display, record.model_path, runner.load_duration_ns / 1e9)
        return entry

    def _repack_for(self, digest: str) -> bool:
        if self.config.repack is not None:
            return self.config.repack
        return digest not in self._without_repack

    def _release(self, entry: _Entry) -> None:
        with self._cond:
            entry.refs -= 1
            if entry.refs > 0:
                return
            if self._entries.get(entry.record.digest) is not entry:
                entry.runner.close()  # detached while in use (its process died): the last user closes it
                self._cond.notify_all()
                return
            if entry.keep_alive == 0:
                self._unload_locked(entry.record.digest, only=entry)
            elif entry.keep_alive < 0 or entry.keep_alive >= FOREVER.total_seconds():
                entry.expires_at = float("inf")
            else:
                entry.expires_at = time.monotonic() + entry.keep_alive
                entry.timer = threading.Timer(entry.keep_alive, self._expire, args=(entry,))
                entry.timer.daemon = True
                entry.timer.start()
            self._cond.notify_all()

    def _expire(self, entry: _Entry) -> None:
        with self._cond:
            if entry.refs == 0 and self._entries.get(entry.record.digest) is entry:
                self._unload_locked(entry.record.digest)
                self._cond.notify_all()

    def _evict_one_locked(self) -> bool:
        idle = [(e.expires_at, k) for k, e in self._entries.items() if e.refs == 0]
        if not idle:
            return False
        self._unload_locked(min(idle)[1])
        return True

    def _unload_locked(self, key: str, only: _Entry | None = None) -> None:
        entry = self._entries.get(key)
        if entry is None or (only is not None and entry is not only):
            return
        del self._entries[key]
        if entry.timer is not None:
            entry.timer.cancel()
        entry.runner.close()
        log.info("unloaded model %s", entry.record.name.display)

    def _detach_locked(self, key: str) -> None:
        """Forget a runner that can no longer run; whoever still holds it closes it on release."""
        entry = self._entries.pop(key)
        if entry.timer is not None:
            entry.timer.cancel()
        if entry.refs == 0:
            entry.runner.close()
        if self.heals_by_reload(entry.runner):
            self._without_repack.add(key)
            log.warning(
                "model %s crashed in its first decode with the CPU's extra buffer types (AMX, repacked "
                "weights): loading it again without them. If that fixes it, PYOLLAMA_REPACK=0 makes it "
                "permanent for every model", entry.record.name.display)
        else:
            log.warning("model %s is no longer running; it will be loaded again", entry.record.name.display)
        self._cond.notify_all()

    def heals_by_reload(self, runner: RunnerBase) -> bool:
        """Whether loading the model again may cure the death of `runner`: it died by a native
        fault in its first decode with the CPU's extra buffer types on, and those are automatic
        (PYOLLAMA_REPACK unset), so the next load goes without them."""
        return self.config.repack is None and runner.repack and runner.faulted_before_first_decode

    def unload(self, record: ModelRecord) -> bool:
        """keep_alive 0 with nothing to do: unload now, or as soon as in-flight requests end."""
        with self._cond:
            entry = self._entries.get(record.digest)
            if entry is None:
                return False
            entry.keep_alive = 0
            if entry.refs == 0:
                self._unload_locked(record.digest)
            self._cond.notify_all()
            return True

    def loaded(self) -> list[LoadedModel]:
        now_wall, now_mono = datetime.now().astimezone(), time.monotonic()
        out = []
        with self._cond:
            for entry in self._entries.values():
                if entry.refs > 0 or entry.expires_at == 0.0:
                    ka = entry.keep_alive
                    expires = now_wall + (FOREVER if ka < 0 else timedelta(seconds=min(ka, FOREVER.total_seconds())))
                elif entry.expires_at == float("inf"):
                    expires = now_wall + FOREVER
                else:
                    expires = now_wall + timedelta(seconds=max(0.0, entry.expires_at - now_mono))
                out.append(
                    LoadedModel(
                        name=entry.record.name.display,
                        record=entry.record,
                        size=entry.runner.size,
                        size_vram=entry.runner.size_vram,
                        expires_at=expires,
                        context_length=entry.runner.n_ctx,
                        repack=entry.runner.repack,
                        flash_attention=entry.runner.flash_attention,
                    )
                )
        out.sort(key=lambda m: m.expires_at, reverse=True)
        return out

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a runner (a load, a free model slot) plus completions waiting in
        runners for a free sequence (read-only; for metrics)."""
        with self._cond:
            return self._waiting + sum(entry.runner.n_queued for entry in self._entries.values())

    @property
    def active_sequences(self) -> int:
        """Sequences evaluating a prompt or generating, over every loaded runner (read-only)."""
        with self._cond:
            return sum(entry.runner.n_active for entry in self._entries.values())

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {"loaded": len(self._entries), "waiting": self._waiting}

    def close(self) -> None:
        with self._cond:
            for key in list(self._entries):
                self._unload_locked(key)
            self._closed = True


def _default_factory(config: Config) -> Callable[..., RunnerBase]:
    """In-process runners, or runners in child processes when models run on RPC workers (a lost
    worker ends the process using it) or when isolation is asked for (PYOLLAMA_RUNNER_PROCESS)."""
    if not (config.rpc_servers or config.runner_process):
        return Runner
    from pyollama.engine.runner_process import ProcessRunner

    return functools.partial(ProcessRunner, rpc_servers=config.rpc_servers, load_timeout=config.load_timeout)
