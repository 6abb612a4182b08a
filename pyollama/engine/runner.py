"""A runner: one loaded model, one llama.cpp context, one decode thread.

Continuous batching: each step of the decode loop packs one new token for
every generating slot and then chunks of pending prompts into a single batch,
decodes once, samples every slot that produced an output with its own sampler,
and hands text to each request's queue. Request threads only wait on queues.

Prompt cache: a slot keeps its KV after its request ends; a new request takes
the free slot sharing the longest token prefix and evaluates only the rest.

Context shift (Ollama's runners): a sequence whose generation fills its `num_ctx` keeps its
first `num_keep` tokens, drops half of the rest from its KV cache and its `cache` list, moves
the positions of what follows down, and goes on. A memory that cannot move positions
(recurrent and hybrid models, M-RoPE, sliding-window caches smaller than the context) is
cleared and the kept tokens are evaluated again instead, as Ollama's runners do.
`shift: false` ends the generation with "length" instead.

Speculative decoding (engine/speculative.py): a generating sequence with drafts (from the model's
draft model, or by prompt lookup) puts them in the step's batch after its last token, and
`_verify` samples them position by position, keeping what the model itself would have sampled.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from pyollama.engine.attention import cpu_flash_attention, head_shape
from pyollama.engine.base import Completion, RunnerBase
from pyollama.engine.detokenizer import StreamDetokenizer
from pyollama.engine.embedding import Embedder
from pyollama.engine.logprobs import compute_logprobs
from pyollama.engine.prompt_cache import pick_slot
from pyollama.engine.schema_grammar import schema_grammar
from pyollama.engine.slots import END, CompletionResult, Slot, SlotState, Task
from pyollama.engine.speculative import MAX_DRAFT, DraftModel, NgramDrafter, compatible
from pyollama.engine.types import TOO_LONG, CompletionChunk, CompletionRequest, EmbedResult
from pyollama.errors import BadRequestError, CanceledError, ModelLoadError, PyollamaError, ServerBusyError
from pyollama.llama import Batch, Context, LoraAdapter, Model
from pyollama.llama.mtmd import MtmdChunks, MtmdContext, default_marker
from pyollama.llama.sampler import DEFAULT_SEED, JSON_GRAMMAR, SamplerSettings, sample_many
from pyollama.llama.system import offload_devices
from pyollama.options import RunnerOptions

log = logging.getLogger("pyollama.runner")

# llama-server's answer (passed through by Ollama) to images for a model loaded without a projector.
NO_MULTIMODAL = "Multimodal data provided, but model does not support multimodal requests."
# Ollama's image tags in rendered prompts; N indexes the request's images.
_IMAGE_TAG = re.compile(r"\[img-(\d+)\]")
# Ollama gives vision models at least this much context.
VISION_MIN_CTX = 2048
# Ollama's bound on an open-ended generation (num_predict -1), in contexts: a context shift
# would otherwise let a model that never stops run forever (llm.boundedNumPredict).
OPEN_ENDED_CONTEXTS = 10
# Drafts per step with a draft model when the request does not say (Ollama's draft_num_predict default).
DRAFT_DEFAULT = 4
# Drafting pays only where checking k+1 tokens at once costs well under k+1 single decodes.
VERIFY_PAYS = 0.6
# Rows of a decode whose results ggml's batch-invariant mode keeps independent of the batch
# (GGML_CPU_INVARIANT_ROWS, vendor/patches/0003): a generation step's tokens and drafts stay within.
INVARIANT_ROWS = 32


class TaskCompletion(Completion):
    """A completion of this process's decode thread, read from its task's queue."""

    def __init__(self, task: Task, wake: threading.Event) -> None:
        self._task = task
        self._wake = wake

    def __iter__(self) -> Iterator[CompletionChunk]:
        while True:
            item = self._task.out.get()
            if item is END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item if isinstance(item, CompletionChunk) else CompletionChunk(item)

    def cancel(self) -> None:
        self._task.cancel.set()
        self._wake.set()

    @property
    def result(self) -> CompletionResult:
        return self._task.result

    @property
    def n_cached(self) -> int:
        # prompts with images never reuse a cached prefix
        task = self._task
        if task.media is not None:
            return 0
        return max(0, len(task.prompt) - task.n_evaluated)


class Runner(RunnerBase):
    """One loaded model. Thread rules: `complete`, `embed`, `tokenize` from any thread; slots and the
    generation context only from the decode thread."""

    def __init__(
        self,
        model_path: str,
        options: RunnerOptions,
        *,
        num_parallel: int = 4,
        max_queue: int = 512,
        flash_attention: bool | None = None,
        measure_attention: bool = False,
        kv_cache_type: str = "f16",
        embedding_only: bool = False,
        n_threads: int = 0,
        adapters: list[str] | None = None,
        projector: str | None = None,
        repack: bool = True,
        draft_model: str | None = None,
    ) -> None:
        t0 = time.perf_counter()
        self.options = options
        self.num_parallel = max(1, num_parallel)
        self.max_queue = max_queue
        self.n_ctx = options.num_ctx
        n_gpu = options.num_gpu
        self._n_threads = options.num_thread if options.num_thread > 0 else n_threads
        try:
            model = Model(
                model_path,
                n_gpu_layers=(999 if n_gpu < 0 else n_gpu),
                use_mmap=options.use_mmap if options.use_mmap is not None else True,
                use_mlock=options.use_mlock,
                main_gpu=options.main_gpu or 0,
                repack=repack,
            )
        except (RuntimeError, ValueError) as e:
            raise ModelLoadError(f"llama runner process has terminated: {e}") from e
        super().__init__(model)
        self.repack = repack
        if projector:
            self.n_ctx = max(self.n_ctx, VISION_MIN_CTX)
        self.n_ctx = max(4, min(self.n_ctx, self.model.n_ctx_train or self.n_ctx))
        self.embedding_only = embedding_only or self.model.is_embedding
        self._offload_share = _offload_share(self.model.n_layer, n_gpu)
        # OLLAMA_FLASH_ATTENTION: 1 on, 0 off. Unset: llama.cpp decides (auto), except that a
        # quantized KV cache turns it on (a quantized V needs it) and, with measure_attention
        # (PYOLLAMA_MEASURE_ATTENTION=1), a model on the CPU measures both paths for its shape
        # (engine/attention.py). Embedding contexts keep auto.
        self._kv_type = (kv_cache_type or "f16").lower()
        if self._kv_type not in _KV_BYTES:
            log.warning("unsupported OLLAMA_KV_CACHE_TYPE %r, using f16 (%s)", kv_cache_type, ", ".join(_KV_BYTES))
            self._kv_type = "f16"
        self._flash_embed = {True: "on", False: "off", None: "auto"}[flash_attention]
        self._flash = self._flash_embed
        if flash_attention is None and not self.embedding_only:
            if self._kv_type != "f16":
                self._flash = "on"
            elif measure_attention and self._offload_share == 0:
                self._flash = self._measured_flash_attention()
        self.flash_attention = self._flash
        self._adapters = [_load_lora(self.model, p) for p in (adapters or [])]
        self._mtmd: MtmdContext | None = None
        if projector and not self.embedding_only:
            try:
                self._mtmd = MtmdContext(self.model, projector, n_threads=self._n_threads, use_gpu=n_gpu != 0)
            except (RuntimeError, ValueError) as e:
                raise ModelLoadError(f"llama runner process has terminated: {e}") from e
        self._eog = frozenset(self.model.eog_tokens())
        self._pending: collections.deque[Task] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self.ctx: Context | None = None
        self._thread: threading.Thread | None = None
        if not self.embedding_only:
            self.ctx = self._make_context(self.n_ctx * self.num_parallel, self.num_parallel, embeddings=False)
            # A recurrent state cannot forget tokens: moving its positions would leave the dropped
            # tokens in it, out of step with the slot's token list. Evaluate the kept ones again.
            self._can_shift = bool(self.ctx.can_shift) and not (self.model.is_recurrent or self.model.is_hybrid)
            if self._adapters:
                self.ctx.set_lora([(a, 1.0) for a in self._adapters])
            self.n_batch = self.ctx.n_batch
            self.slots = [Slot(seq_id=i) for i in range(self.num_parallel)]
            self._batch = Batch(self.n_batch, 1)
            # speculation needs to drop rejected drafts from the KV cache, which a recurrent
            # state cannot do
            self._can_draft = not (self.model.is_recurrent or self.model.is_hybrid)
            self._draft = self._load_draft(draft_model) if draft_model and self._can_draft else None
            self._draft_default = DRAFT_DEFAULT if self._draft is not None and self._checks_pay() else 0
            self._thread = threading.Thread(target=self._decode_loop, name="pyollama-decode", daemon=True)
            self._thread.start()
        else:
            self.slots = []
            self._can_draft = False
            self._draft = None
            self._draft_default = 0
        self._embedder = Embedder(self.model, self.n_ctx, self._make_context)
        self.load_duration_ns = int((time.perf_counter() - t0) * 1e9)

    # ---- public API (any thread) ----

    @property
    def size(self) -> int:
        """Bytes the runner holds: weights plus the KV cache (K and V, every layer and slot, in
        their types: V stays f16 without flash attention)."""
        kv = 0
        if self.ctx is not None:
            n_embd_kv = self.model.n_embd * self.model.n_head_kv // max(1, self.model.n_head)
            cells = self.n_ctx * self.num_parallel * self.model.n_layer * n_embd_kv
            v_type = self._kv_type if self._flash == "on" else "f16"
            kv = int(cells * (_KV_BYTES.get(self._kv_type, 2.0) + _KV_BYTES.get(v_type, 2.0)))
        draft = self._draft.size if self._draft is not None else 0
        return int(self.model.size) + kv + draft

    @property
    def has_draft(self) -> bool:
        """Whether the model's draft model is loaded and drafting."""
        return self._draft is not None

    @property
    def size_vram(self) -> int:
        return int(self.size * self._offload_share)

    def complete(self, request: CompletionRequest) -> Completion:
        if self.ctx is None:
            raise BadRequestError("this model does not support generate")
        task = self._make_task(request)
        with self._lock:
            if len(self._pending) >= self.max_queue:
                raise ServerBusyError()
            self._pending.append(task)
        self._wake.set()
        return TaskCompletion(task, self._wake)

    @property
    def n_queued(self) -> int:
        """Completions waiting for a free sequence (read-only; for metrics)."""
        with self._lock:
            return len(self._pending)

    @property
    def n_active(self) -> int:
        """Sequences evaluating a prompt or generating (read-only; for metrics: slot states are
        written by the decode thread, so this is a snapshot)."""
        return sum(1 for slot in self.slots if slot.state is not SlotState.IDLE)

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending) or any(s.state is not SlotState.IDLE for s in self.slots)

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def embed(self, inputs: list[str], *, truncate: bool = True) -> EmbedResult:
        return self._embedder.embed(inputs, truncate=truncate)

    # ---- setup helpers ----

    def _measured_flash_attention(self) -> str:
        shape = head_shape(self.model)
        return "auto" if shape is None else cpu_flash_attention(*shape, self._n_threads or 1)

    def _load_draft(self, path: str) -> DraftModel | None:
        """The draft model in a context of its own (a sequence per slot); None, with a warning,
        when it cannot draft for this model: the model still serves, without speculation."""
        o = self.options
        try:
            model = Model(
                path,
                n_gpu_layers=(999 if o.num_gpu < 0 else o.num_gpu),
                use_mmap=o.use_mmap if o.use_mmap is not None else True,
                main_gpu=o.main_gpu or 0,
                repack=self.repack,
            )
        except (RuntimeError, ValueError) as e:
            raise ModelLoadError(f"llama runner process has terminated: draft model: {e}") from e
        why = compatible(self.model.path, path)
        if why is not None:
            log.warning("not using the draft model %s: %s", path, why)
            return None
        try:
            ctx = Context(
                model,
                n_ctx=self.n_ctx * self.num_parallel,
                n_batch=self.n_batch,
                n_ubatch=min(self.n_batch, 512),
                n_seq_max=self.num_parallel,
                n_threads=self._n_threads,
                flash_attn=self._flash_embed,
            )
        except (RuntimeError, ValueError) as e:
            raise ModelLoadError(f"failed to create the draft model's context: {e}") from e
        if self.ctx is not None:
            try:  # one thread pool: the two contexts take turns on the decode thread
                ctx.share_threadpool(self.ctx)
            except ValueError:
                pass  # no CPU thread pool (all layers offloaded): nothing to share
        log.info("speculative decoding with draft model %s (%d layers)", path, model.n_layer)
        return DraftModel(model, ctx, self.model.n_vocab)

    def _checks_pay(self) -> bool:
        """Whether checking drafts can pay on this device: a decode of 1 + DRAFT_DEFAULT tokens
        must cost clearly less than that many decodes of one (where every row costs a full
        pass over the weights, as for Q4_1 weights on a small CPU, no draft can win). Timed once
        at load on sequence 0; the model's default drafting is off where it cannot pay (a
        request's draft_num_predict still turns it on)."""
        assert self.ctx is not None
        batch = self._batch
        rows = 1 + DRAFT_DEFAULT
        times: dict[int, list[float]] = {1: [], rows: []}
        for _ in range(3):
            for n in (1, rows):
                batch.clear()
                for i in range(n):  # a check wants every position's logits
                    batch.add((100 + i) % self.model.n_vocab, i, 0, True)
                t0 = time.perf_counter()
                self.ctx.decode(batch)
                times[n].append(time.perf_counter() - t0)
                self.ctx.seq_rm(0, -1, -1)
        ratio = min(times[rows]) / max(min(times[1]), 1e-9)
        pays = ratio < VERIFY_PAYS * rows
        log.info("draft model: a check of %d tokens costs %.1f single decodes; drafting by default: %s",
                 rows, ratio, "on" if pays else "off (draft_num_predict turns it on)")
        return pays

    def _make_context(
        self,
        n_ctx: int,
        n_seq: int,
        *,
        embeddings: bool,
        pooling: str = "unspecified",
        n_batch: int | None = None,
        unified: bool = False,
    ) -> Context:
        nb = n_batch or max(self.options.num_batch, 512)
        flash = self._flash_embed if embeddings else self._flash
        try:
            return Context(
                self.model,
                n_ctx=n_ctx,
                n_batch=nb,
                n_ubatch=min(nb, 512) if not embeddings else nb,
                n_seq_max=n_seq,
                n_threads=self._n_threads,
                embeddings=embeddings,
                pooling=pooling,
                flash_attn=flash,
                type_k=self._kv_type,
                type_v=self._kv_type if flash == "on" else "f16",
                kv_unified=unified,
            )
        except (RuntimeError, ValueError) as e:
            raise ModelLoadError(f"failed to create context: {e}") from e

    def _prompt_tokens(self, request: CompletionRequest) -> list[int]:
        if isinstance(request.prompt, list):
            for t in request.prompt:
                if not isinstance(t, int) or not 0 <= t < self.model.n_vocab:
                    raise BadRequestError(f"invalid token id in context: {t}")
            return list(request.prompt)
        if request.suffix is not None:
            fim = self.model.fim_tokens
            tokens = [self.model.token_bos] if self.model.add_bos and self.model.token_bos is not None else []
            tokens += [fim["pre"], *self.tokenize(request.prompt, add_special=False)]
            tokens += [fim["suf"], *self.tokenize(request.suffix, add_special=False), fim["mid"]]
            return tokens
        return self.tokenize(request.prompt, add_special=True, parse_special=True)

    def _fit_prompt(self, tokens: list[int], request: CompletionRequest) -> list[int]:
        limit = self.n_ctx - 1
        if len(tokens) <= limit:
            return tokens
        if not request.truncate:
            raise BadRequestError(TOO_LONG)
        reserve = request.options.num_predict if request.options.num_predict > 0 else self.n_ctx // 4
        target = max(1, limit - min(reserve, self.n_ctx // 2))
        keep = max(0, min(request.options.num_keep, target // 2))
        if self.model.add_bos and tokens and tokens[0] == self.model.token_bos:
            keep = max(keep, 1)
        fitted = tokens[:keep] + tokens[len(tokens) - (target - keep) :]
        log.warning("truncating input prompt limit=%d prompt=%d keep=%d new=%d", self.n_ctx, len(tokens), keep, len(fitted))
        return fitted

    def _sampler_settings(self, request: CompletionRequest) -> SamplerSettings:
        o = request.options
        grammar, kind = "", "user"
        if request.json_schema is not None:
            # a 400 for what the grammar could not enforce, never unconstrained output
            grammar, kind = schema_grammar(request.json_schema), "output_format"
        elif request.json_mode:
            grammar, kind = JSON_GRAMMAR, "output_format"
        elif request.grammar:
            grammar = request.grammar
            kind = "tool_calls" if request.grammar_lazy or request.generation_prompt else "user"
        preserved = []
        for text in request.preserved_tokens:
            ids = self.tokenize(text, add_special=False, parse_special=True)
            if len(ids) == 1:
                preserved.append(ids[0])
        return SamplerSettings(
            seed=DEFAULT_SEED if o.seed < 0 else o.seed,
            temperature=o.temperature,
            top_k=o.top_k,
            top_p=o.top_p,
            min_p=o.min_p,
            typical_p=o.typical_p,
            repeat_last_n=o.repeat_last_n if o.repeat_last_n >= 0 else self.n_ctx,
            repeat_penalty=o.repeat_penalty if o.repeat_penalty > 0 else 1.0,
            presence_penalty=o.presence_penalty,
            frequency_penalty=o.frequency_penalty,
            mirostat=o.mirostat,
            mirostat_tau=o.mirostat_tau,
            mirostat_eta=o.mirostat_eta,
            grammar=grammar,
            grammar_kind=kind,
            grammar_lazy=request.grammar_lazy and bool(grammar),
            grammar_triggers=request.grammar_triggers if grammar else [],
            preserved_tokens=preserved,
            generation_prompt=request.generation_prompt if kind != "user" else "",
        )

    @property
    def has_vision(self) -> bool:
        return self._mtmd is not None

    def _media_chunks(self, request: CompletionRequest) -> MtmdChunks:
        """The prompt with its images as mtmd chunks (called from request threads: mtmd's
        tokenization is thread-safe). Images keep the places their `[img-N]` tags give them;
        images no tag refers to (raw prompts) go first."""
        assert self._mtmd is not None and isinstance(request.prompt, str)
        images = request.images
        marker = default_marker()
        ordered: list[bytes] = []
        used: set[int] = set()

        def place(match: re.Match[str]) -> str:
            n = int(match.group(1))
            if n >= len(images):
                return match.group(0)
            ordered.append(images[n])
            used.add(n)
            return marker

        text = _IMAGE_TAG.sub(place, request.prompt)
        rest = [image for i, image in enumerate(images) if i not in used]
        text, ordered = marker * len(rest) + text, rest + ordered
        try:
            chunks = self._mtmd.tokenize(text, ordered)
            if chunks.types()[-1] != "text":
                # the first sample needs the logits of a text token after the last image
                chunks = self._mtmd.tokenize(text + "\n", ordered)
        except ValueError as e:
            raise BadRequestError(str(e)) from e
        if chunks.n_pos > self.n_ctx - 1:
            raise BadRequestError(TOO_LONG)
        return chunks

    def _make_task(self, request: CompletionRequest) -> Task:
        if request.suffix is not None and not self.model.supports_fim:
            raise BadRequestError("model does not support insert")
        media: MtmdChunks | None = None
        if request.images:
            if self._mtmd is None or not isinstance(request.prompt, str) or request.suffix is not None:
                raise BadRequestError(NO_MULTIMODAL)
            media = self._media_chunks(request)
            tokens = list(media.text_tokens())
        else:
            tokens = self._fit_prompt(self._prompt_tokens(request), request)
        if not tokens:
            tokens = [self.model.token_bos if self.model.token_bos is not None else 0]
        try:
            sampler = self._sampler_settings(request).build(self.model)
        except ValueError as e:
            raise BadRequestError(str(e)) from e
        stops = list(request.options.stop) + [s for s in request.additional_stops if s]
        num_predict = request.options.num_predict
        if num_predict < 0 or num_predict > OPEN_ENDED_CONTEXTS * self.n_ctx:
            num_predict = OPEN_ENDED_CONTEXTS * self.n_ctx
        n_draft = request.options.draft_num_predict
        if n_draft < 0:
            n_draft = self._draft_default
        if media is not None or not self._can_draft:
            n_draft = 0  # image positions have no token ids to draft from or to drop
        n_draft = min(n_draft, MAX_DRAFT)
        return Task(
            prompt=tokens,
            sampler=sampler,
            detok=StreamDetokenizer(stops),
            num_predict=num_predict,
            media=media,
            shift=request.shift,
            num_keep=request.options.num_keep,
            n_top_logprobs=max(0, request.top_logprobs) if request.logprobs else -1,
            n_draft=n_draft,
            drafter=NgramDrafter() if n_draft > 0 and self._draft is None else None,
        )

    # ---- decode thread ----

    def _decode_loop(self) -> None:
        while not self._closing:
            try:
                self._admit()
                if not any(s.state is not SlotState.IDLE for s in self.slots):
                    self._wake.wait(timeout=0.5)
                    self._wake.clear()
                    continue
                self._step()
            except Exception as e:  # never let the decode thread die silently
                log.exception("decode loop error")
                for slot in self.slots:
                    if slot.task is not None:
                        self._finish(slot, error=PyollamaError(f"an error was encountered while running the model: {e}"))
                        slot.cache = []
                        assert self.ctx is not None
                        self.ctx.seq_rm(slot.seq_id, -1, -1)

    def _admit(self) -> None:
        """Move waiting tasks into free slots, reusing the longest cached prefix."""
        assert self.ctx is not None
        while True:
            free = [s.seq_id for s in self.slots if s.state is SlotState.IDLE]
            with self._lock:
                if not free or not self._pending:
                    return
                task = self._pending.popleft()
            if task.cancel.is_set():
                task.result.done_reason = ""
                task.out.put(CanceledError("request canceled"))
                task.out.put(END)
                continue
            if task.media is not None:
                self._admit_media(task, free)
                continue
            i_slot, n_reuse = pick_slot([s.cache for s in self.slots], free, task.prompt)
            slot = self.slots[i_slot]
            # at least one prompt token must be evaluated to get logits for the first sample
            n_reuse = min(n_reuse, len(task.prompt) - 1)
            if not self.ctx.seq_rm(slot.seq_id, n_reuse, -1):
                n_reuse = 0
                self.ctx.seq_rm(slot.seq_id, -1, -1)
            del slot.cache[n_reuse:]
            task.i_prompt = n_reuse
            task.t_start = time.perf_counter()
            slot.task = task
            slot.state = SlotState.PROMPT

    def _admit_media(self, task: Task, free: list[int]) -> None:
        """Evaluate a prompt with images into a free slot right away, outside the continuous batch
        (the projector encodes whole images), sample its first token, and leave the slot generating."""
        assert self.ctx is not None and self._mtmd is not None and task.media is not None
        # the slot whose cache is least worth keeping: image prompts never reuse a cached prefix
        slot = min((self.slots[i] for i in free), key=lambda s: len(s.cache))
        self.ctx.seq_rm(slot.seq_id, -1, -1)
        slot.cache = []
        task.t_start = time.perf_counter()
        slot.task = task
        slot.state = SlotState.PROMPT
        try:
            n_past = self._mtmd.eval(self.ctx, task.media, 0, slot.seq_id, self.n_batch)
        except (RuntimeError, ValueError) as e:
            self.ctx.seq_rm(slot.seq_id, -1, -1)
            self._finish(slot, error=PyollamaError(f"an error was encountered while running the model: {e}"))
            return
        # KV positions with no token id (image embeddings, and what follows them) are marked -1, so
        # only the text before the first image can ever match a later prompt's prefix.
        prefix = list(task.media.tokens(0))
        slot.cache = prefix + [-1] * (n_past - len(prefix))
        task.i_prompt = len(task.prompt)
        task.n_evaluated = int(task.media.n_tokens)
        tok = sample_many(self.ctx, [task.sampler], [-1])[0]
        task.t_prompt_done = time.perf_counter()
        slot.state = SlotState.GENERATING
        self._on_token(slot, tok)

    def _step(self) -> None:
        """One round: a decode of every generating sequence's next token (and its drafts), then a
        decode of one chunk of one pending prompt. They are separate decodes so that what a
        sequence computes never depends on what else is being evaluated: with ggml's
        batch-invariant mode (pyollama.llama) greedy output is the same alone, under continuous
        batching and with drafts."""
        for slot in self.slots:
            if slot.task is not None and slot.task.cancel.is_set():
                self._finish(slot, reason="")
        self._generation_step()
        self._prompt_step()

    def _generation_step(self) -> None:
        assert self.ctx is not None
        generating = [s for s in self.slots if s.state is SlotState.GENERATING]
        if not generating:
            return
        self._propose_drafts()
        batch = self._batch
        batch.clear()
        for slot in generating:
            slot.i_batch = len(batch)
            batch.add(slot.last_token, slot.n_past, slot.seq_id, True)
            for j, tok in enumerate(slot.drafts):
                batch.add(tok, slot.n_past + 1 + j, slot.seq_id, True)
        rc = self.ctx.decode(batch)
        if rc != 0:
            self._recover_from_full_cache(generating, rc)
            return
        for slot in generating:
            slot.cache.append(slot.last_token)
        plain = [s for s in generating if not s.drafts]
        tokens = sample_many(self.ctx, [s.task.sampler for s in plain], [s.i_batch for s in plain])  # type: ignore[union-attr]
        for slot, tok in zip(plain, tokens):
            self._on_token(slot, tok)
        for slot in generating:
            if slot.drafts:
                self._verify(slot)

    def _prompt_step(self) -> None:
        """The next chunk (n_batch tokens, or what is left) of the first sequence evaluating a
        prompt; after its last chunk, its first token is sampled."""
        assert self.ctx is not None
        slot = next((s for s in self.slots if s.state is SlotState.PROMPT and s.task is not None), None)
        if slot is None:
            return
        task = slot.task
        assert task is not None
        if task.replay:
            chunk = task.replay[: self.n_batch]
            del task.replay[: len(chunk)]
            last = not task.replay
        else:
            chunk = task.prompt[task.i_prompt : task.i_prompt + self.n_batch]
            last = task.i_prompt + len(chunk) == len(task.prompt)
            task.i_prompt += len(chunk)
            task.n_evaluated += len(chunk)
        batch = self._batch
        batch.clear()
        batch.add_sequence(chunk, slot.n_past, slot.seq_id, last)
        slot.cache.extend(chunk)
        rc = self.ctx.decode(batch)
        if rc != 0:
            self._recover_from_full_cache([slot], rc)
            return
        if not last:
            return
        slot.i_batch = len(batch) - 1
        tok = sample_many(self.ctx, [task.sampler], [slot.i_batch])[0]
        slot.state = SlotState.GENERATING
        if not task.t_prompt_done:  # not after a replay (a shift)
            task.t_prompt_done = time.perf_counter()
        self._on_token(slot, tok)

    def _propose_drafts(self) -> None:
        """Drafts for each generating sequence that asks for them, as many as its context, its
        `num_predict` and the batch leave room for."""
        wanted: dict[int, tuple[list[int], int]] = {}
        room = min(self.n_batch, INVARIANT_ROWS) - sum(1 for s in self.slots if s.state is SlotState.GENERATING)
        for slot in self.slots:
            slot.drafts = []
            task = slot.task
            if slot.state is not SlotState.GENERATING or task is None or task.n_draft <= 0:
                continue
            k = min(task.n_draft, self.n_ctx - 2 - slot.n_past, task.num_predict - len(task.generated) - 1, room)
            if k <= 0:
                continue
            history = [*slot.cache, slot.last_token]
            if task.drafter is not None:
                slot.drafts = task.drafter.draft(history, k)
                room -= len(slot.drafts)
            else:
                wanted[slot.seq_id] = (history, k)
                room -= k
        if wanted and self._draft is not None:
            for seq_id, drafts in self._draft.draft(wanted).items():
                self.slots[seq_id].drafts = drafts
        for slot in self.slots:
            # nothing after an end of generation is ever taken
            end = next((j for j, tok in enumerate(slot.drafts) if tok in self._eog), None)
            if end is not None:
                del slot.drafts[end + 1 :]

    def _verify(self, slot: Slot) -> None:
        """Sample the slot's positions in this step's batch in order with its own sampler, going
        on while the sampled token is the draft that the next position was evaluated after; the
        KV of the drafts not taken is dropped."""
        assert self.ctx is not None and slot.task is not None
        task, drafts, base = slot.task, slot.drafts, slot.i_batch
        slot.drafts = []
        task.n_drafted += len(drafts)
        if slot.state is SlotState.GENERATING and not task.t_prompt_done:
            task.t_prompt_done = time.perf_counter()
        for j in range(len(drafts) + 1):
            slot.i_batch = base + j
            tok = sample_many(self.ctx, [task.sampler], [base + j])[0]
            taken = j < len(drafts) and tok == drafts[j]
            task.n_accepted += taken
            self._on_token(slot, tok)
            if not taken or slot.task is not task or slot.state is not SlotState.GENERATING:
                break
            slot.cache.append(tok)  # evaluated in this batch after the previous token
        self.ctx.seq_rm(slot.seq_id, slot.n_past, -1)

    def _recover_from_full_cache(self, outputs: list[Slot], rc: int) -> None:
        """llama_decode found no KV room (rc 1) or was aborted: end the affected requests cleanly."""
        assert self.ctx is not None
        for slot in self.slots:
            if slot.task is None:
                continue
            self._finish(slot, reason="length")
            self.ctx.seq_rm(slot.seq_id, -1, -1)
            slot.cache = []
        log.warning("llama_decode returned %d; ended %d requests", rc, len(outputs))

    def _on_token(self, slot: Slot, tok: int) -> None:
        task = slot.task
        assert task is not None
        if tok < 0:  # the sampler failed for this sequence (sample_many's contract)
            self._finish(slot, error=PyollamaError("an error was encountered while running the model: sampling failed"))
            return
        if tok in self._eog:
            self._finish(slot, reason="stop")
            return
        task.generated.append(tok)
        if task.n_top_logprobs < 0:
            text = task.detok.push(self.model.token_to_piece(tok, False))
            if text:
                task.out.put(text)
        else:
            self._push_with_logprobs(slot, tok)
        if task.detok.stopped:
            self._finish(slot, reason="stop")
        elif 0 < task.num_predict <= len(task.generated) or (not task.shift and slot.n_past + 1 >= self.n_ctx):
            self._finish(slot, reason="length")
        elif slot.n_past + 1 > self.n_ctx:  # a shift uses the context to its last position
            self._shift(slot, tok)
        else:
            slot.last_token = tok

    def _push_with_logprobs(self, slot: Slot, tok: int) -> None:
        """`tok`'s text into the detokenizer, and its log-probabilities (from this step's raw
        logits) out with the text that completes it."""
        assert self.ctx is not None and slot.task is not None
        task, detok = slot.task, slot.task.detok
        start = detok.n_decoded
        text = detok.push(self.model.token_to_piece(tok, False))
        entry = compute_logprobs(self.ctx.logits(slot.i_batch), tok, task.n_top_logprobs, self._special_piece)
        task.logprobs.add(entry, start, detok.n_decoded + int(detok.partial))
        entries = task.logprobs.take(detok.n_released, stopped=detok.stopped)
        if text or entries:
            task.out.put(CompletionChunk(text, entries))

    def _special_piece(self, tok: int) -> bytes:
        """A token's text for its log-probability: special tokens rendered, as Ollama does."""
        return bytes(self.model.token_to_piece(tok, True))

    def _shift(self, slot: Slot, tok: int) -> None:
        """The sequence's context is full: keep its first `num_keep` tokens (and BOS), drop half
        of the rest, and go on with `tok` (Ollama's ShiftCacheSlot). Where the memory cannot
        move positions, the kept tokens are evaluated again (the slot goes back to PROMPT)."""
        assert self.ctx is not None and slot.task is not None
        task = slot.task
        n_past = slot.n_past
        n_keep = len(task.prompt) if task.num_keep < 0 else task.num_keep
        if self.model.add_bos:
            n_keep += 1
        n_keep = max(0, min(n_keep, self.n_ctx - 1))
        n_discard = min(max((self.n_ctx - n_keep) // 2, 1) - (self.n_ctx - n_past), n_past - n_keep)
        log.debug("context limit hit - shifting seq=%d limit=%d input=%d keep=%d discard=%d",
                  slot.seq_id, self.n_ctx, n_past, n_keep, n_discard)
        if self._can_shift and self.ctx.seq_rm(slot.seq_id, n_keep, n_keep + n_discard):
            self.ctx.seq_add(slot.seq_id, n_keep + n_discard, n_past, -n_discard)
            del slot.cache[n_keep : n_keep + n_discard]
            slot.last_token = tok
            return
        kept = slot.cache[:n_keep] + slot.cache[n_keep + n_discard :]
        if -1 in kept:  # image embeddings cannot be evaluated again from token ids
            self._finish(slot, reason="length")
            return
        self.ctx.seq_rm(slot.seq_id, -1, -1)
        slot.cache = []
        task.replay = [*kept, tok]
        slot.state = SlotState.PROMPT

    def _finish(self, slot: Slot, *, reason: str = "stop", error: BaseException | None = None) -> None:
        task = slot.task
        if task is None:
            return
        now = time.perf_counter()
        if error is None and reason:
            tail = task.detok.finish()
            entries = task.logprobs.take_all() if task.n_top_logprobs >= 0 else []
            if entries:
                task.out.put(CompletionChunk(tail, entries))
            elif tail:
                task.out.put(tail)
        t_prompt = task.t_prompt_done or now
        r = task.result
        r.done_reason = reason
        r.prompt_eval_count = task.n_evaluated
        r.prompt_eval_duration_ns = int((t_prompt - task.t_start) * 1e9)
        r.eval_count = len(task.generated)
        r.eval_duration_ns = int((now - t_prompt) * 1e9) if task.t_prompt_done else 0
        r.context = task.prompt + task.generated
        r.draft_count, r.draft_accepted = task.n_drafted, task.n_accepted
        if task.n_drafted:
            log.debug("speculative decoding seq=%d drafted=%d accepted=%d generated=%d",
                      slot.seq_id, task.n_drafted, task.n_accepted, len(task.generated))
        if error is not None:
            task.out.put(error)
        elif not reason:
            task.out.put(CanceledError("request canceled"))
        task.out.put(END)
        slot.task = None
        slot.state = SlotState.IDLE
        slot.last_token = -1
        slot.i_batch = -1


# Bytes per KV cache element of each OLLAMA_KV_CACHE_TYPE (ggml block size over elements).
_KV_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32, "q5_0": 22 / 32,
             "q4_1": 20 / 32, "q4_0": 18 / 32, "iq4_nl": 18 / 32}


def _offload_share(n_layer: int, n_gpu: int) -> float:
    """The share of a model's weights and KV cache that `num_gpu` puts on accelerators or RPC
    workers: llama.cpp offloads whole layers (the repeating blocks, then the output layer), so
    this counts them like Ollama's estimate does; 0 when this process has no such device."""
    if n_gpu == 0 or not offload_devices():
        return 0.0
    blocks = max(1, n_layer + 1)
    return min(blocks, blocks if n_gpu < 0 else n_gpu) / blocks


def _load_lora(model: Model, path: str) -> Any:
    try:
        return LoraAdapter(model, path)
    except RuntimeError as e:
        raise ModelLoadError(str(e)) from e
