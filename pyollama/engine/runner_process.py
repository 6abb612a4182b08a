"""A runner whose model runs in a child process, so that its crash is not the server's.

ggml's RPC client ends the process that uses a worker when the worker dies mid-call
(`GGML_ABORT`), and a backend can crash the same way on a driver fault. The server must
outlive both, as Ollama outlives its runner processes. `ProcessRunner` keeps a vocab-only
copy of the model in the server (tokenizing, chat templates, reply parsing: no weights)
and starts a child interpreter that loads the full model, with its RPC workers, into an
ordinary `Runner` (continuous batching, prompt cache and all). Requests and their text
travel over a socket pair as pickled tuples.

When the child dies, every request in flight ends with Ollama's "model runner has
unexpectedly stopped" error (naming the cause the child printed), the runner says it is
no longer `alive`, and the scheduler loads a fresh one for the next request.

Wire messages (tuples; `rid` is the parent's request number):
  parent -> child: ("load", path, options, kwargs, rpc_servers), ("complete", rid, request),
                   ("embed", rid, inputs, truncate), ("cancel", rid), ("close",)
  child -> parent: ("loaded", info) | ("failed", None, error) for the load;
                   ("accepted", rid) | ("failed", rid, error); ("text", rid, str) or, with
                   log-probabilities, ("text", rid, str, [Logprob, ...]);
                   ("end", rid, result, n_cached); ("embedded", rid, EmbedResult)
Errors travel as (class name, message, status) and come back as the same pyollama error.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import pyollama
from pyollama import errors, llama
from pyollama.engine.base import Completion, RunnerBase
from pyollama.engine.slots import CompletionResult
from pyollama.engine.types import CompletionChunk, CompletionRequest, EmbedResult
from pyollama.errors import ModelLoadError, PyollamaError
from pyollama.llama import Model
from pyollama.options import RunnerOptions

log = logging.getLogger("pyollama.runner")

# Ollama's text for a runner that died under a request (llm/server.go).
STOPPED = (
    "model runner has unexpectedly stopped, this may be due to resource limitations or an internal error, "
    "check ollama server logs for details"
)
# ggml_abort prints "<file>:<line>: <message>"; that message is the cause worth repeating.
_GGML_ABORT = re.compile(r"\.(?:c|cpp|cu|m):\d+: (.+)$")
_STDERR_TAIL = 40
_STDERR_LOGGED = 10  # of the tail, the lines logged when a runner dies
_CLOSE_WAIT_S = 10.0
# Signals of a native fault (as opposed to a kill from outside): a bad CPU path, a driver bug.
FAULT_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGILL, signal.SIGBUS, signal.SIGFPE})

# The child runs this: the parent's own sys.path, so it imports the very package the parent
# runs (an installed pyollama, not a source checkout that happens to be the working directory),
# and refuses to start when that still resolves elsewhere.
_BOOTSTRAP = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
    "from pyollama.engine.runner_process import _child_main; sys.exit(_child_main(sys.argv[1:]))"
)


def exit_description(code: int | None) -> str:
    """How a process ended, in Go's words (os.ProcessState.String), as Ollama reports its runners:
    "exit status 1", "signal: segmentation fault"."""
    if code is None:
        return "the runner closed its connection"
    if code >= 0:
        return f"exit status {code}"
    try:
        name = signal.strsignal(-code)
    except ValueError:
        name = None
    return f"signal: {name.lower() if name else f'signal {-code}'}"


class RunnerStoppedError(PyollamaError):
    """The model's process died under a request (500, Ollama's text)."""


@dataclasses.dataclass
class _Ended:
    result: CompletionResult
    n_cached: int



def _pack_error(exc: BaseException) -> tuple[str, str, int]:
    if isinstance(exc, PyollamaError):
        return type(exc).__name__, exc.message, exc.status
    return "PyollamaError", f"an error was encountered while running the model: {exc}", 500


def _unpack_error(packed: tuple[str, str, int]) -> PyollamaError:
    """The same pyollama error class where it is one of ours (RpcError included), else the base."""
    name, message, status = packed
    from pyollama.llama import rpc

    cls = getattr(errors, name, None) or getattr(rpc, name, None) or getattr(sys.modules[__name__], name, None)
    if not (isinstance(cls, type) and issubclass(cls, PyollamaError)):
        cls = PyollamaError
    err = cls.__new__(cls)
    PyollamaError.__init__(err, message, status)
    return err


class ProcessCompletion(Completion):
    """A completion running in the child: text arrives through the runner's reader thread."""

    def __init__(self, runner: ProcessRunner, rid: int, out: queue.Queue[Any]) -> None:
        self._runner = runner
        self._rid = rid
        self._out = out
        self._ended: _Ended | None = None

    def __iter__(self) -> Iterator[CompletionChunk]:
        try:
            while True:
                item = self._out.get()
                if isinstance(item, str):
                    yield CompletionChunk(item)
                elif isinstance(item, CompletionChunk):
                    yield item
                elif isinstance(item, _Ended):
                    self._ended = item
                    return
                elif isinstance(item, BaseException):
                    raise item
        finally:
            self._runner._forget(self._rid)

    def cancel(self) -> None:
        self._runner._send_quietly(("cancel", self._rid))

    @property
    def result(self) -> CompletionResult:
        return self._ended.result if self._ended is not None else CompletionResult(done_reason="")

    @property
    def n_cached(self) -> int:
        return self._ended.n_cached if self._ended is not None else 0


class ProcessRunner(RunnerBase):
    """A `Runner` in a child interpreter. Thread rules: any method from any thread; one reader
    thread owns the receiving end of the socket, sends are serialised by a lock."""

    def __init__(
        self,
        model_path: str,
        options: RunnerOptions,
        *,
        rpc_servers: tuple[str, ...] | list[str] = (),
        load_timeout: float = 0.0,
        **runner_kwargs: Any,
    ) -> None:
        t0 = time.perf_counter()
        self.options = options
        self.num_parallel = max(1, int(runner_kwargs.get("num_parallel", 4)))
        try:
            model = Model(model_path, vocab_only=True)
        except (RuntimeError, ValueError) as e:
            raise ModelLoadError(f"llama runner process has terminated: {e}") from e
        super().__init__(model)
        self._ids = itertools.count(1)
        self._queues: dict[int, queue.Queue[Any]] = {}
        self._queues_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self._alive = True
        self._closing = False
        self._decoded = False  # any text or embedding came back: the model's kernels have run
        self._exit_code: int | None = None
        self._death: RunnerStoppedError | None = None
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env.setdefault("GGML_NO_BACKTRACE", "1")  # no gdb attach on abort: slow, and the cause is one line
        if runner_kwargs.get("embedding_only") and not llama.BATCH_INVARIANT_FROM_USER:
            env["GGML_CPU_BATCH_INVARIANT"] = "0"  # see pyollama.llama
        try:
            package_dir = os.path.dirname(os.path.abspath(pyollama.__file__))
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(child_sock.fileno()), json.dumps(sys.path), package_dir],
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # a Ctrl-C meant for the server does not reach the child first
            )
        finally:
            child_sock.close()
        self._conn = Connection(parent_sock.detach())
        self._stderr_thread = threading.Thread(target=self._read_stderr, name="pyollama-runner-stderr", daemon=True)
        self._stderr_thread.start()
        try:
            info = self._load(model_path, options, runner_kwargs, list(rpc_servers), load_timeout)
        except BaseException:
            self._kill()
            raise
        self.n_ctx = int(info["n_ctx"])
        self.embedding_only = bool(info["embedding_only"])
        self.repack = bool(info["repack"])
        self.flash_attention = str(info["flash_attention"])
        self._size = int(info["size"])
        self._size_vram = int(info["size_vram"])
        self._reader = threading.Thread(target=self._read_loop, name="pyollama-runner-reader", daemon=True)
        self._reader.start()
        self.load_duration_ns = int((time.perf_counter() - t0) * 1e9)
        log.info("model runner process %d loaded %s", self._proc.pid, model_path)

    # ---- the runner interface ----

    @property
    def size(self) -> int:
        return self._size

    @property
    def size_vram(self) -> int:
        return self._size_vram

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def pid(self) -> int:
        return int(self._proc.pid)

    @property
    def faulted_before_first_decode(self) -> bool:
        """The child died by a native fault (SIGSEGV, SIGILL, SIGBUS, SIGFPE) before any text or
        embedding came back: the model's first decode crashed, most likely in a CPU code path."""
        code = self._exit_code
        return not self._alive and not self._decoded and code is not None and code < 0 and \
            -code in FAULT_SIGNALS

    @property
    def n_queued(self) -> int:
        with self._queues_lock:
            return max(0, len(self._queues) - self.num_parallel)

    @property
    def n_active(self) -> int:
        with self._queues_lock:
            return min(len(self._queues), self.num_parallel)

    @property
    def busy(self) -> bool:
        with self._queues_lock:
            return bool(self._queues)

    def complete(self, request: CompletionRequest) -> Completion:
        rid, out = self._open()
        self._send_or_fail(rid, ("complete", rid, request))
        first = out.get()
        if isinstance(first, BaseException):
            self._forget(rid)
            raise first
        return ProcessCompletion(self, rid, out)

    def embed(self, inputs: list[str], *, truncate: bool = True) -> EmbedResult:
        rid, out = self._open()
        try:
            self._send_or_fail(rid, ("embed", rid, list(inputs), truncate))
            item = out.get()
        finally:
            self._forget(rid)
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, EmbedResult)
        return item

    def close(self) -> None:
        self._closing = True
        self._send_quietly(("close",))
        try:
            self._proc.wait(timeout=_CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            log.warning("model runner process %d did not stop; killing it", self._proc.pid)
            self._kill()
        self._conn.close()

    # ---- plumbing ----

    def _load(
        self, path: str, options: RunnerOptions, kwargs: dict[str, Any], rpc: list[str], timeout: float
    ) -> dict[str, Any]:
        self._conn.send(("load", path, options, kwargs, rpc))
        deadline = None if timeout <= 0 or timeout == float("inf") else timeout
        try:
            if deadline is not None and not self._conn.poll(deadline):
                raise ModelLoadError(f"timed out waiting for llama runner to start after {timeout:g}s")
            message = self._conn.recv()
        except (EOFError, OSError):
            raise ModelLoadError(f"llama runner process has terminated: {self._death_detail()}") from None
        if message[0] == "failed":
            raise _unpack_error(message[2])
        info: dict[str, Any] = message[1]
        return info

    def _open(self) -> tuple[int, queue.Queue[Any]]:
        out: queue.Queue[Any] = queue.Queue()
        with self._queues_lock:
            if not self._alive:
                raise self._death or RunnerStoppedError(STOPPED)
            rid = next(self._ids)
            self._queues[rid] = out
        return rid, out

    def _forget(self, rid: int) -> None:
        with self._queues_lock:
            self._queues.pop(rid, None)

    def _send_or_fail(self, rid: int, message: tuple[Any, ...]) -> None:
        if not self._send_quietly(message):
            # the reader thread sees the same broken socket and fails every open request; this
            # one too, unless the reader is still waiting for the child to exit
            self._reader.join(timeout=_CLOSE_WAIT_S)
            self._deliver(rid, self._death or RunnerStoppedError(STOPPED))

    def _send_quietly(self, message: tuple[Any, ...]) -> bool:
        """Send; False when the child is gone (its socket closed)."""
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, ValueError):
            return False
        return True

    def _deliver(self, rid: int, item: Any) -> None:
        with self._queues_lock:
            out = self._queues.get(rid)
        if out is not None:
            out.put(item)

    def _read_loop(self) -> None:
        """Reader thread: route the child's messages to their requests until the socket ends."""
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            kind, rid = message[0], message[1]
            if kind in ("text", "end", "embedded"):
                self._decoded = True
            if kind == "text":
                self._deliver(rid, message[2] if len(message) == 3 else CompletionChunk(message[2], message[3]))
            elif kind == "accepted":
                self._deliver(rid, True)
            elif kind == "end":
                self._deliver(rid, _Ended(message[2], message[3]))
            elif kind == "embedded":
                self._deliver(rid, message[2])
            elif kind == "failed":
                self._deliver(rid, _unpack_error(message[2]))
        self._on_child_gone()

    def _on_child_gone(self) -> None:
        try:
            self._proc.wait(timeout=_CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            self._kill()
        self._stderr_thread.join(timeout=2.0)
        self._exit_code = self._proc.poll()
        death = RunnerStoppedError(f"{STOPPED}: {self._death_detail()}")
        with self._queues_lock:
            self._alive = False
            self._death = death
            open_queues = list(self._queues.values())
        if not self._closing:
            tail = list(self._stderr_tail)[-_STDERR_LOGGED:]
            log.error("model runner process %d stopped: %s%s", self._proc.pid, self._death_detail(),
                      "; its last output:\n  " + "\n  ".join(tail) if tail else " (it printed nothing)")
        for out in open_queues:
            out.put(death)

    def _death_detail(self) -> str:
        """The cause the child printed (ggml's abort message), else how it ended."""
        for line in reversed(self._stderr_tail):
            found = _GGML_ABORT.search(line)
            if found:
                return found.group(1).strip()
        return exit_description(self._proc.poll())

    def _read_stderr(self) -> None:
        """The child's log (llama.cpp's and ours) goes to the server's log; its tail explains a death."""
        assert self._proc.stderr is not None
        child_log = logging.getLogger("pyollama.runner.process")
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self._stderr_tail.append(line)
            child_log.debug("[%d] %s", self._proc.pid, line)

    def _kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=_CLOSE_WAIT_S)


# ---- the child ----


class _ChildServer:
    """Runs in the child: one Runner, one thread per request streaming its text back."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.send_lock = threading.Lock()
        self.completions: dict[int, Completion] = {}
        self.lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.conn.send(message)

    def serve(self) -> None:
        from pyollama.engine.runner import Runner
        from pyollama.llama.rpc import add_rpc_servers

        message = self.conn.recv()
        _, path, options, kwargs, rpc = message
        try:
            if rpc:
                add_rpc_servers(rpc)
            runner = Runner(path, options, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every load failure goes back to the server
            self.send(("failed", None, _pack_error(exc)))
            return
        self.send(
            (
                "loaded",
                {
                    "n_ctx": runner.n_ctx,
                    "size": runner.size,
                    "size_vram": runner.size_vram,
                    "embedding_only": runner.embedding_only,
                    "repack": runner.repack,
                    "flash_attention": runner.flash_attention,
                },
            )
        )
        try:
            while True:
                try:
                    message = self.conn.recv()
                except (EOFError, OSError):
                    return  # the server went away
                kind = message[0]
                if kind == "close":
                    return
                if kind == "complete":
                    self._start(runner, message[1], message[2])
                elif kind == "cancel":
                    with self.lock:
                        completion = self.completions.get(message[1])
                    if completion is not None:
                        completion.cancel()
                elif kind == "embed":
                    threading.Thread(target=self._embed, args=(runner, *message[1:]), daemon=True).start()
        finally:
            runner.close()

    def _start(self, runner: Any, rid: int, request: CompletionRequest) -> None:
        try:
            completion = runner.complete(request)
        except Exception as exc:  # noqa: BLE001 - refused requests answer the server
            self.send(("failed", rid, _pack_error(exc)))
            return
        with self.lock:
            self.completions[rid] = completion
        self.send(("accepted", rid))
        threading.Thread(target=self._stream, args=(rid, completion), daemon=True).start()

    def _stream(self, rid: int, completion: Completion) -> None:
        try:
            for chunk in completion:
                if chunk.logprobs:
                    self.send(("text", rid, chunk.text, chunk.logprobs))
                else:
                    self.send(("text", rid, chunk.text))
            self.send(("end", rid, completion.result, completion.n_cached))
        except Exception as exc:  # noqa: BLE001
            self._send_quietly(("failed", rid, _pack_error(exc)))
        finally:
            with self.lock:
                self.completions.pop(rid, None)

    def _embed(self, runner: Any, rid: int, inputs: list[str], truncate: bool) -> None:
        try:
            self.send(("embedded", rid, runner.embed(inputs, truncate=truncate)))
        except Exception as exc:  # noqa: BLE001
            self._send_quietly(("failed", rid, _pack_error(exc)))

    def _send_quietly(self, message: tuple[Any, ...]) -> None:
        try:
            self.send(message)
        except (OSError, ValueError):
            pass


def _child_main(argv: list[str]) -> int:
    """argv: the socket's fd, then (from the bootstrap) the parent's sys.path and package dir."""
    if len(argv) > 2 and os.path.dirname(os.path.abspath(pyollama.__file__)) != argv[2]:
        print(f"pyollama runner: imported pyollama from {os.path.dirname(pyollama.__file__)}, but the server "
              f"runs the one in {argv[2]}", file=sys.stderr)
        return 3
    debug = os.environ.get("OLLAMA_DEBUG", "").lower() not in ("", "0", "false")
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if debug:
        from pyollama import _native

        _native.set_log_level(2)  # llama.cpp's load log: where each layer's weights went
    conn = Connection(int(argv[0]))
    try:
        _ChildServer(conn).serve()
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
