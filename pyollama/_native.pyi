"""Stubs for pyollama._native (generated with pybind11-stubgen, then kept in step with the module by hand;
tests/native/test_stub.py checks that every name matches)."""

import collections.abc
import typing

import numpy
import numpy.typing

__all__: list[str] = ['Batch', 'ChatParams', 'ChatTemplates', 'CommonSampler', 'Context', 'LoraAdapter', 'Model', 'MtmdChunks', 'MtmdContext', 'SamplerChain', 'attention_seconds', 'backend_init', 'backends', 'cpu_extra_buffer_types', 'devices', 'float32_json', 'has_rpc', 'json_schema_to_grammar', 'llama_build_info', 'mtmd_default_marker', 'print_system_info', 'quantize', 'quantize_types', 'rpc_add_server', 'rpc_check_endpoint', 'rpc_proto_version', 'rpc_registered', 'rpc_start_server', 'sample_many', 'set_log_level', 'time_us']
class Model:
    def __init__(self, path: str, n_gpu_layers: typing.SupportsInt | typing.SupportsIndex = 0, use_mmap: bool = True, use_mlock: bool = False, vocab_only: bool = False, main_gpu: typing.SupportsInt | typing.SupportsIndex = 0, progress: typing.Any = None, check_tensors: bool = False, repack: bool = True) -> None:
        """
        llama_model_load_from_file (GIL released; progress(float)->bool|None may cancel)
        """
    def chat_template(self, name: str | None = None) -> str | None:
        ...
    def detokenize(self, tokens: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], remove_special: bool = False, unparse_special: bool = True) -> str:
        """
        llama_detokenize, decoded as UTF-8 with replacement
        """
    def detokenize_bytes(self, tokens: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], remove_special: bool = False, unparse_special: bool = True) -> bytes:
        ...
    def eog_tokens(self) -> list[int]:
        ...
    def is_control(self, token: typing.SupportsInt | typing.SupportsIndex) -> bool:
        ...
    def is_eog(self, token: typing.SupportsInt | typing.SupportsIndex) -> bool:
        ...
    def meta(self, key: str) -> str | None:
        ...
    def metadata(self) -> dict[str, typing.Any]:
        """
        all GGUF key/values as strings (arrays are summarised by llama.cpp)
        """
    def token_attr(self, token: typing.SupportsInt | typing.SupportsIndex) -> int:
        ...
    def token_score(self, token: typing.SupportsInt | typing.SupportsIndex) -> float:
        ...
    def token_text(self, token: typing.SupportsInt | typing.SupportsIndex) -> str:
        ...
    def token_to_piece(self, token: typing.SupportsInt | typing.SupportsIndex, special: bool = True) -> bytes:
        """
        llama_token_to_piece: raw bytes (may be part of a UTF-8 character)
        """
    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """
        llama_tokenize (str or UTF-8 bytes in; GIL released)
        """
    @property
    def add_bos(self) -> bool:
        ...
    @property
    def add_eos(self) -> bool:
        ...
    @property
    def description(self) -> str:
        ...
    @property
    def ftype(self) -> int:
        ...
    @property
    def ftype_name(self) -> str:
        ...
    @property
    def has_decoder(self) -> bool:
        ...
    @property
    def has_encoder(self) -> bool:
        ...
    @property
    def is_hybrid(self) -> bool:
        ...
    @property
    def is_recurrent(self) -> bool:
        ...
    @property
    def n_cls_out(self) -> int:
        ...
    @property
    def n_ctx_train(self) -> int:
        ...
    @property
    def n_embd(self) -> int:
        ...
    @property
    def n_embd_out(self) -> int:
        ...
    @property
    def n_head(self) -> int:
        ...
    @property
    def n_head_kv(self) -> int:
        ...
    @property
    def n_layer(self) -> int:
        ...
    @property
    def n_params(self) -> int:
        ...
    @property
    def n_swa(self) -> int:
        ...
    @property
    def n_vocab(self) -> int:
        ...
    @property
    def path(self) -> str:
        ...
    @property
    def repack(self) -> bool:
        ...
    @property
    def size(self) -> int:
        ...
    @property
    def token_bos(self) -> typing.Any:
        ...
    @property
    def token_eos(self) -> typing.Any:
        ...
    @property
    def token_eot(self) -> typing.Any:
        ...
    @property
    def token_fim_mid(self) -> typing.Any:
        ...
    @property
    def token_fim_pad(self) -> typing.Any:
        ...
    @property
    def token_fim_pre(self) -> typing.Any:
        ...
    @property
    def token_fim_rep(self) -> typing.Any:
        ...
    @property
    def token_fim_sep(self) -> typing.Any:
        ...
    @property
    def token_fim_suf(self) -> typing.Any:
        ...
    @property
    def token_nl(self) -> typing.Any:
        ...
    @property
    def token_pad(self) -> typing.Any:
        ...
    @property
    def token_sep(self) -> typing.Any:
        ...
    @property
    def vocab_type(self) -> int:
        ...
class LoraAdapter:
    def __init__(self, model: Model, path: str) -> None:
        ...
    @property
    def path(self) -> str:
        ...
class Context:
    def __init__(self, model: Model, n_ctx: typing.SupportsInt | typing.SupportsIndex = 4096, n_batch: typing.SupportsInt | typing.SupportsIndex = 0, n_ubatch: typing.SupportsInt | typing.SupportsIndex = 0, n_seq_max: typing.SupportsInt | typing.SupportsIndex = 1, n_threads: typing.SupportsInt | typing.SupportsIndex = 0, n_threads_batch: typing.SupportsInt | typing.SupportsIndex = 0, embeddings: bool = False, pooling: str = 'unspecified', flash_attn: str = 'auto', type_k: str = 'f16', type_v: str = 'f16', kv_unified: bool = False, swa_full: bool = False, offload_kqv: bool = True) -> None:
        """
        llama_init_from_model
        """
    def abort(self) -> None:
        """
        make a running decode return 2 (any thread)
        """
    def decode(self, batch: Batch) -> int:
        """
        llama_decode (GIL released): 0 ok, 1 no KV slot, 2 aborted; errors raise RuntimeError
        """
    def embeddings_ith(self, i: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def embeddings_seq(self, seq_id: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
        """
        pooled embedding of a sequence (pooling != none)
        """
    def encode(self, batch: Batch) -> int:
        """
        llama_encode (GIL released)
        """
    def logits(self, i: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.float32]:
        """
        logits of batch index i of the last decode (a copy: llama.cpp reuses its buffer)
        """
    def memory_clear(self, data: bool = True) -> None:
        ...
    def perf(self) -> dict[str, typing.Any]:
        """
        llama_perf_context
        """
    def perf_reset(self) -> None:
        ...
    def seq_add(self, seq_id: typing.SupportsInt | typing.SupportsIndex, p0: typing.SupportsInt | typing.SupportsIndex, p1: typing.SupportsInt | typing.SupportsIndex, delta: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        shift positions [p0, p1) by delta
        """
    def seq_cp(self, src: typing.SupportsInt | typing.SupportsIndex, dst: typing.SupportsInt | typing.SupportsIndex, p0: typing.SupportsInt | typing.SupportsIndex = -1, p1: typing.SupportsInt | typing.SupportsIndex = -1) -> None:
        ...
    def seq_div(self, seq_id: typing.SupportsInt | typing.SupportsIndex, p0: typing.SupportsInt | typing.SupportsIndex, p1: typing.SupportsInt | typing.SupportsIndex, d: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def seq_keep(self, seq_id: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def seq_pos_max(self, seq_id: typing.SupportsInt | typing.SupportsIndex) -> int:
        """
        -1 when the sequence is empty
        """
    def seq_pos_min(self, seq_id: typing.SupportsInt | typing.SupportsIndex) -> int:
        """
        -1 when the sequence is empty
        """
    def seq_rm(self, seq_id: typing.SupportsInt | typing.SupportsIndex, p0: typing.SupportsInt | typing.SupportsIndex = -1, p1: typing.SupportsInt | typing.SupportsIndex = -1) -> bool:
        """
        llama_memory_seq_rm: False if a partial removal is impossible
        """
    def seq_state(self, seq_id: typing.SupportsInt | typing.SupportsIndex) -> bytes:
        """
        save one sequence's KV state
        """
    def set_causal_attn(self, on: bool) -> None:
        ...
    def share_threadpool(self, other: Context) -> None:
        """run on `other`'s CPU thread pool: for contexts used one after the other from one thread (a draft model beside its model), so that one pool's idle workers never poll for cores the other's need"""
    def set_embeddings(self, on: bool) -> None:
        ...
    def set_lora(self, adapters: collections.abc.Sequence[tuple[LoraAdapter, typing.SupportsFloat | typing.SupportsIndex]]) -> None:
        """
        list of (LoraAdapter, scale)
        """
    def set_n_threads(self, n_threads: typing.SupportsInt | typing.SupportsIndex, n_threads_batch: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        ...
    def set_seq_state(self, data: bytes, seq_id: typing.SupportsInt | typing.SupportsIndex) -> int:
        """
        restore a sequence's KV state (saved by seq_state)
        """
    @property
    def can_shift(self) -> bool:
        ...
    @property
    def model(self) -> Model:
        ...
    @property
    def n_batch(self) -> int:
        ...
    @property
    def n_ctx(self) -> int:
        ...
    @property
    def n_ctx_seq(self) -> int:
        ...
    @property
    def n_seq_max(self) -> int:
        ...
    @property
    def n_threads(self) -> int:
        ...
    @property
    def n_ubatch(self) -> int:
        ...
    @property
    def pooling(self) -> str:
        ...
class Batch:
    def __init__(self, capacity: typing.SupportsInt | typing.SupportsIndex, n_seq_max: typing.SupportsInt | typing.SupportsIndex = 1) -> None:
        """
        llama_batch_init(capacity, 0, n_seq_max)
        """
    def __len__(self) -> int:
        ...
    def add(self, token: typing.SupportsInt | typing.SupportsIndex, pos: typing.SupportsInt | typing.SupportsIndex, seq_id: typing.Any = 0, logits: bool = False) -> None:
        ...
    def add_sequence(self, tokens: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], pos0: typing.SupportsInt | typing.SupportsIndex, seq_id: typing.SupportsInt | typing.SupportsIndex = 0, logits_last: bool = True) -> None:
        """
        append tokens at consecutive positions of one sequence; only the last one outputs logits
        """
    def clear(self) -> None:
        ...
    def pos(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> int:
        ...
    def set_logits(self, i: typing.SupportsInt | typing.SupportsIndex, on: bool = True) -> None:
        ...
    def token(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> int:
        ...
    @property
    def capacity(self) -> int:
        ...
    @property
    def n_tokens(self) -> int:
        ...
class SamplerChain:
    def __init__(self) -> None:
        """
        llama_sampler_chain_init
        """
    def __len__(self) -> int:
        ...
    def accept(self, token: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def add_dist(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def add_grammar(self, model: Model, gbnf: str, root: str = 'root') -> None:
        ...
    def add_greedy(self) -> None:
        ...
    def add_logit_bias(self, model: Model, bias: collections.abc.Mapping[typing.SupportsInt | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex]) -> None:
        ...
    def add_min_p(self, p: typing.SupportsFloat | typing.SupportsIndex, min_keep: typing.SupportsInt | typing.SupportsIndex = 1) -> None:
        ...
    def add_mirostat(self, model: Model, seed: typing.SupportsInt | typing.SupportsIndex, tau: typing.SupportsFloat | typing.SupportsIndex = 5.0, eta: typing.SupportsFloat | typing.SupportsIndex = 0.10000000149011612, m: typing.SupportsInt | typing.SupportsIndex = 100) -> None:
        ...
    def add_mirostat_v2(self, seed: typing.SupportsInt | typing.SupportsIndex, tau: typing.SupportsFloat | typing.SupportsIndex = 5.0, eta: typing.SupportsFloat | typing.SupportsIndex = 0.10000000149011612) -> None:
        ...
    def add_penalties(self, model: Model, last_n: typing.SupportsInt | typing.SupportsIndex = 64, repeat: typing.SupportsFloat | typing.SupportsIndex = 1.0, freq: typing.SupportsFloat | typing.SupportsIndex = 0.0, present: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
        ...
    def add_temp(self, t: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    def add_top_k(self, k: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def add_top_p(self, p: typing.SupportsFloat | typing.SupportsIndex, min_keep: typing.SupportsInt | typing.SupportsIndex = 1) -> None:
        ...
    def add_typical(self, p: typing.SupportsFloat | typing.SupportsIndex, min_keep: typing.SupportsInt | typing.SupportsIndex = 1) -> None:
        ...
    def reset(self) -> None:
        ...
    def sample(self, ctx: Context, idx: typing.SupportsInt | typing.SupportsIndex = -1) -> int:
        """
        sample a token and accept it
        """
    @property
    def seed(self) -> int:
        ...
class CommonSampler:
    def __init__(self, model: Model, seed: typing.SupportsInt | typing.SupportsIndex = 4294967295, temperature: typing.SupportsFloat | typing.SupportsIndex = 0.800000011920929, top_k: typing.SupportsInt | typing.SupportsIndex = 40, top_p: typing.SupportsFloat | typing.SupportsIndex = 0.8999999761581421, min_p: typing.SupportsFloat | typing.SupportsIndex = 0.0, typical_p: typing.SupportsFloat | typing.SupportsIndex = 1.0, repeat_last_n: typing.SupportsInt | typing.SupportsIndex = 64, repeat_penalty: typing.SupportsFloat | typing.SupportsIndex = 1.0, presence_penalty: typing.SupportsFloat | typing.SupportsIndex = 0.0, frequency_penalty: typing.SupportsFloat | typing.SupportsIndex = 0.0, mirostat: typing.SupportsInt | typing.SupportsIndex = 0, mirostat_tau: typing.SupportsFloat | typing.SupportsIndex = 5.0, mirostat_eta: typing.SupportsFloat | typing.SupportsIndex = 0.10000000149011612, grammar: str = '', grammar_kind: str = 'user', grammar_lazy: bool = False, grammar_triggers: collections.abc.Sequence[dict[str, typing.Any]] = [], preserved_tokens: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = [], generation_prompt: str = '', logit_bias: collections.abc.Mapping[typing.SupportsInt | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex] = {}, n_probs: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        """
        common_sampler_init (raises ValueError for a grammar that does not parse)
        """
    def accept(self, token: typing.SupportsInt | typing.SupportsIndex, is_generated: bool = True) -> None:
        ...
    def reset(self) -> None:
        ...
    def sample(self, ctx: Context, idx: typing.SupportsInt | typing.SupportsIndex = -1, grammar_first: bool = False) -> int:
        """
        common_sampler_sample (does not accept)
        """
    @property
    def greedy(self) -> bool:
        """
        True when sampling is a plain argmax (fast path)
        """
    @property
    def seed(self) -> int:
        ...
class ChatTemplates:
    def __init__(self, model: Model, override_template: str = '') -> None:
        ...
    def apply(self, messages_json: str, tools_json: str = '', add_generation_prompt: bool = True, json_schema: str = '', grammar: str = '', tool_choice: str = 'auto', parallel_tool_calls: bool = False, enable_thinking: bool = True, reasoning_format: str = 'auto') -> ChatParams:
        """
        common_chat_templates_apply: messages/tools as OpenAI-style JSON text
        """
    def caps(self) -> dict[str, bool]:
        ...
    @property
    def source(self) -> str:
        ...
    @property
    def supports_thinking(self) -> bool:
        ...
    @property
    def was_explicit(self) -> bool:
        ...
class ChatParams:
    def parse(self, text: str, is_partial: bool = False, reasoning_format: str = 'auto', parse_tool_calls: bool = True) -> dict[str, typing.Any]:
        """
        common_chat_parse: {content, reasoning_content, tool_calls:[{name, arguments(JSON text), id}]}
        """
    @property
    def additional_stops(self) -> list[str]:
        ...
    @property
    def format(self) -> str:
        ...
    @property
    def generation_prompt(self) -> str:
        ...
    @property
    def grammar(self) -> str:
        ...
    @property
    def grammar_lazy(self) -> bool:
        ...
    @property
    def grammar_triggers(self) -> list[typing.Any]:
        ...
    @property
    def preserved_tokens(self) -> list[str]:
        ...
    @property
    def prompt(self) -> str:
        ...
    @property
    def supports_thinking(self) -> bool:
        ...
    @property
    def thinking_end_tags(self) -> list[str]:
        ...
    @property
    def thinking_start_tag(self) -> str:
        ...
class MtmdChunks:
    def __len__(self) -> int:
        ...
    def text_tokens(self) -> list[int]:
        """the text tokens of all text chunks, in order (image tokens left out)"""
    def tokens(self, i: typing.SupportsInt | typing.SupportsIndex) -> list[int]:
        """the text tokens of chunk i (empty for an image chunk)"""
    def types(self) -> list[str]:
        """the type of each chunk: 'text', 'image' or 'audio'"""
    @property
    def n_pos(self) -> int:
        ...
    @property
    def n_tokens(self) -> int:
        ...
class MtmdContext:
    def __init__(self, model: Model, projector_path: str, n_threads: typing.SupportsInt | typing.SupportsIndex = 0, use_gpu: bool = True, warmup: bool = True) -> None:
        """mtmd_init_from_file (GIL released): a projector for `model`; RuntimeError when it cannot load"""
    def eval(self, ctx: Context, chunks: MtmdChunks, n_past: typing.SupportsInt | typing.SupportsIndex, seq_id: typing.SupportsInt | typing.SupportsIndex = 0, n_batch: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
        """mtmd_helper_eval_chunks (GIL released): evaluate chunks into seq_id at n_past; returns the new n_past; the last token's logits are at index -1"""
    def tokenize(self, text: str, images: collections.abc.Sequence[bytes], add_special: bool = True, parse_special: bool = True) -> MtmdChunks:
        """mtmd_tokenize: one mtmd_default_marker() per image in `text`; images are encoded file bytes (PNG, JPEG, BMP, GIF). ValueError for undecodable images or a marker count mismatch"""
    @property
    def model(self) -> Model:
        ...
    @property
    def path(self) -> str:
        ...
    @property
    def supports_audio(self) -> bool:
        ...
    @property
    def supports_vision(self) -> bool:
        ...
    @property
    def uses_mrope(self) -> bool:
        ...
def attention_seconds(head_dim: typing.SupportsInt | typing.SupportsIndex, n_head: typing.SupportsInt | typing.SupportsIndex, n_head_kv: typing.SupportsInt | typing.SupportsIndex, n_kv: typing.SupportsInt | typing.SupportsIndex, n_q: typing.SupportsInt | typing.SupportsIndex, n_threads: typing.SupportsInt | typing.SupportsIndex, flash: bool, reps: typing.SupportsInt | typing.SupportsIndex = 5) -> float:
    """
    Median seconds of one layer's attention on the CPU, with flash attention or without, for n_q tokens of n_head heads (head_dim wide) against n_kv cached positions of n_head_kv heads
    """
def backend_init(backend_dir: str = '') -> None:
    """
    llama_backend_init (+ ggml_backend_load_all_from_path); runs once per process
    """
def backends() -> list[str]:
    ...
def devices() -> list[typing.Any]:
    ...
def float32_json(values: numpy.typing.ArrayLike) -> str:
    """
    JSON text of float32 values as Go's encoding/json writes []float32 (or [][]float32)
    """
def json_schema_to_grammar(schema_json: str) -> str:
    """
    json_schema_to_grammar (common): GBNF for a JSON schema; ValueError when unsupported
    """
def llama_build_info() -> dict[str, typing.Any]:
    ...
def mtmd_default_marker() -> str:
    """mtmd_default_marker: the text that stands for one image in a prompt given to MtmdContext.tokenize"""
def print_system_info() -> str:
    ...
def quantize(src: str, dst: str, type: str, n_threads: typing.SupportsInt | typing.SupportsIndex = 0, allow_requantize: bool = False, pure: bool = False, progress: typing.Callable[[int, int], object] | None = None) -> None:
    """
    llama_model_quantize (GIL released); type like Q4_K_M, Q8_0, F16; progress(i, n) after each tensor
    """
def quantize_types() -> list[str]:
    ...
# The RPC functions exist only in a build with -DGGML_RPC=on; has_rpc says which.
has_rpc: bool
rpc_proto_version: tuple[int, int, int]
def rpc_add_server(endpoint: str) -> list[str]:
    """
    ggml_backend_rpc_add_server + ggml_backend_register; names of the devices it adds
    """
def rpc_check_endpoint(endpoint: str) -> None:
    """
    raise ValueError unless endpoint is host:port (what ggml's endpoint parser accepts)
    """
def rpc_registered() -> list[tuple[str, str]]:
    """
    (device name, endpoint) of every registered RPC device
    """
def rpc_start_server(endpoint: str, devices: collections.abc.Sequence[str] = [], n_threads: typing.SupportsInt | typing.SupportsIndex = 1, cache_dir: str = '') -> None:
    """
    ggml_backend_rpc_start_server (GIL released; blocks until the server fails)
    """
def sample_many(ctx: Context, samplers: collections.abc.Sequence[CommonSampler], idxs: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> list[int]:
    ...
def set_log_level(level: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    ggml log level threshold: 1 debug, 2 info, 3 warn, 4 error, 5 none
    """
def cpu_extra_buffer_types() -> list[str]:
    ...
def time_us() -> int:
    """
    llama_time_us
    """
__version__: str = '0.1.0'
