// Contexts: decode/encode, logits and embeddings, KV memory per sequence, state, perf.
#include "errors.hpp"
#include "handles.hpp"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace pyollama {

namespace {

ggml_type kv_type_from_name(const std::string & name) {
    static const std::pair<const char *, ggml_type> table[] = {
        {"f32", GGML_TYPE_F32}, {"f16", GGML_TYPE_F16}, {"bf16", GGML_TYPE_BF16}, {"q8_0", GGML_TYPE_Q8_0},
        {"q4_0", GGML_TYPE_Q4_0}, {"q4_1", GGML_TYPE_Q4_1}, {"q5_0", GGML_TYPE_Q5_0}, {"q5_1", GGML_TYPE_Q5_1},
        {"iq4_nl", GGML_TYPE_IQ4_NL},
    };
    for (const auto & [n, t] : table) {
        if (name == n) return t;
    }
    raise_value("unknown KV cache type '" + name + "' (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl)");
}

enum llama_pooling_type pooling_from_name(const std::string & name) {
    if (name == "" || name == "unspecified") return LLAMA_POOLING_TYPE_UNSPECIFIED;
    if (name == "none") return LLAMA_POOLING_TYPE_NONE;
    if (name == "mean") return LLAMA_POOLING_TYPE_MEAN;
    if (name == "cls") return LLAMA_POOLING_TYPE_CLS;
    if (name == "last") return LLAMA_POOLING_TYPE_LAST;
    if (name == "rank") return LLAMA_POOLING_TYPE_RANK;
    raise_value("unknown pooling type '" + name + "' (none, mean, cls, last, rank, unspecified)");
}

const char * pooling_name(enum llama_pooling_type t) {
    switch (t) {
        case LLAMA_POOLING_TYPE_NONE: return "none";
        case LLAMA_POOLING_TYPE_MEAN: return "mean";
        case LLAMA_POOLING_TYPE_CLS: return "cls";
        case LLAMA_POOLING_TYPE_LAST: return "last";
        case LLAMA_POOLING_TYPE_RANK: return "rank";
        default: return "unspecified";
    }
}

// ggml's thread pools corrupt memory past a few hundred threads: 0 means "all cores".
constexpr int32_t kMaxThreads = 512;

void check_threads(int32_t n) {
    if (n < 0 || n > kMaxThreads) raise_value("n_threads must be in [0, " + std::to_string(kMaxThreads) + "]");
}

// The CPU backend's thread-pool functions, looked up through its registry entry so that builds
// that load backends as modules (GGML_BACKEND_DL) find them too; null when there is no CPU backend.
struct ThreadpoolFns {
    ggml_threadpool * (*make)(ggml_threadpool_params *) = nullptr;
    void (*free)(ggml_threadpool *) = nullptr;
};

ThreadpoolFns cpu_threadpool_fns() {
    ThreadpoolFns fns;
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("CPU");
    if (reg) {
        fns.make = reinterpret_cast<decltype(fns.make)>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new"));
        fns.free = reinterpret_cast<decltype(fns.free)>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free"));
    }
    if (!fns.make || !fns.free) fns = {};
    return fns;
}

// A persistent CPU thread pool for the context, as llama-bench and llama-cli attach: ggml otherwise
// creates a throw-away pool per graph compute (a thread start and join per token). Workers poll
// briefly (ggml's default level, 50) before sleeping, so back-to-back decodes start at once. One
// pool serves decodes and batches (llama_set_n_threads says how many of its threads each uses);
// it is replaced only when more threads are asked for than it has, and the old one is retired
// (see ContextHandle). Called with the context's mutex held or before the context is shared.
void attach_threadpools(ContextHandle & h, int32_t n_threads, int32_t n_threads_batch) {
    static const ThreadpoolFns fns = cpu_threadpool_fns();
    if (!fns.make) return;
    const int32_t size = std::max(n_threads, n_threads_batch);
    if (h.threadpool && size <= h.threadpool_size) return;
    llama_detach_threadpool(h.ctx);
    h.threadpool_free = fns.free;
    if (h.threadpool) h.retired_threadpools.push_back(h.threadpool);
    ggml_threadpool_params tpp = ggml_threadpool_params_default(size);
    h.threadpool = fns.make(&tpp);
    h.threadpool_size = h.threadpool ? size : 0;
    if (h.threadpool) {
        // llama_attach_threadpool: a null batch pool means the decode pool serves batches too.
        llama_attach_threadpool(h.ctx, h.threadpool, nullptr);
    }
}

// ggml_abort_callback: called from compute threads; true aborts the running decode.
bool should_abort(void * data) {
    return static_cast<ContextHandle *>(data)->abort.load(std::memory_order_relaxed);
}

ContextPtr make_context(ModelPtr model, uint32_t n_ctx, uint32_t n_batch, uint32_t n_ubatch, uint32_t n_seq_max,
                        int32_t n_threads, int32_t n_threads_batch, bool embeddings, const std::string & pooling,
                        const std::string & flash_attn, const std::string & type_k, const std::string & type_v,
                        bool kv_unified, bool swa_full, bool offload_kqv) {
    if (model->vocab && llama_model_n_layer(model->model) == 0 && !llama_model_has_encoder(model->model)) {
        raise_value("a vocab-only model cannot have a context");
    }
    if (n_seq_max == 0 || n_seq_max > llama_max_parallel_sequences()) {
        raise_value("n_seq_max must be in [1, " + std::to_string(llama_max_parallel_sequences()) + "]");
    }
    check_threads(n_threads);
    check_threads(n_threads_batch);
    llama_context_params p = llama_context_default_params();
    p.n_ctx = n_ctx;
    if (n_batch) p.n_batch = n_batch;
    if (n_ubatch) p.n_ubatch = n_ubatch;
    p.n_seq_max = n_seq_max;
    const int32_t hw = static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
    p.n_threads = n_threads > 0 ? n_threads : hw;
    p.n_threads_batch = n_threads_batch > 0 ? n_threads_batch : p.n_threads;
    p.embeddings = embeddings;
    p.pooling_type = pooling_from_name(pooling);
    if (flash_attn == "auto") p.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
    else if (flash_attn == "on") p.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    else if (flash_attn == "off") p.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    else raise_value("flash_attn must be 'auto', 'on' or 'off'");
    p.type_k = kv_type_from_name(type_k);
    p.type_v = kv_type_from_name(type_v);
    p.kv_unified = kv_unified;
    p.swa_full = swa_full;
    p.offload_kqv = offload_kqv;
    p.no_perf = false;

    auto h = std::make_shared<ContextHandle>();
    h->model = model;
    p.abort_callback = should_abort;
    p.abort_callback_data = h.get();
    {
        py::gil_scoped_release release;
        // llama_init_from_model: nullptr on failure (bad params, out of memory).
        h->ctx = llama_init_from_model(model->model, p);
    }
    if (!h->ctx) {
        raise_runtime("failed to create llama context (n_ctx=" + std::to_string(n_ctx) + ")");
    }
    attach_threadpools(*h, p.n_threads, p.n_threads_batch);
    h->n_seq_max = llama_n_seq_max(h->ctx);
    h->n_batch = llama_n_batch(h->ctx);
    h->embeddings = embeddings;
    return h;
}

void validate_batch(const ContextHandle & h, const BatchHandle & b) {
    const llama_batch & bt = b.batch;
    if (bt.n_tokens == 0) raise_value("empty batch");
    if (static_cast<uint32_t>(bt.n_tokens) > h.n_batch) {
        raise_value("batch of " + std::to_string(bt.n_tokens) + " tokens exceeds n_batch " + std::to_string(h.n_batch));
    }
    for (int32_t i = 0; i < bt.n_tokens; ++i) {
        check_token(*h.model, bt.token[i]);
        for (int32_t k = 0; k < bt.n_seq_id[i]; ++k) {
            h.check_seq(bt.seq_id[i][k]);
        }
    }
}

// Runs llama_decode/llama_encode with the GIL released. Contract: 0 ok, 1 no KV slot for the batch,
// 2 aborted, -1 invalid batch, < -1 fatal. Positive codes are returned; negative ones raise.
int32_t run_batch(ContextHandle & h, BatchHandle & b, bool encode) {
    validate_batch(h, b);
    int32_t rc;
    {
        py::gil_scoped_release release;
        std::lock_guard<std::mutex> lock(h.mutex);
        h.abort = false;
        rc = encode ? llama_encode(h.ctx, b.batch) : llama_decode(h.ctx, b.batch);
        h.last_outputs.assign(b.batch.logits, b.batch.logits + b.batch.n_tokens);
    }
    if (rc < 0) {
        h.last_outputs.clear();
        raise_runtime(std::string(encode ? "llama_encode" : "llama_decode") + " failed with code " + std::to_string(rc));
    }
    return rc;
}

py::array_t<float> copy_floats(const float * data, size_t n) {
    py::array_t<float> out(n);
    std::memcpy(out.mutable_data(), data, n * sizeof(float));
    return out;
}

}  // namespace

void bind_context(py::module_ & m) {
    py::class_<ContextHandle, ContextPtr>(m, "Context")
        .def(py::init(&make_context), py::arg("model"), py::arg("n_ctx") = 4096, py::arg("n_batch") = 0,
             py::arg("n_ubatch") = 0, py::arg("n_seq_max") = 1, py::arg("n_threads") = 0,
             py::arg("n_threads_batch") = 0, py::arg("embeddings") = false, py::arg("pooling") = "unspecified",
             py::arg("flash_attn") = "auto", py::arg("type_k") = "f16", py::arg("type_v") = "f16",
             py::arg("kv_unified") = false, py::arg("swa_full") = false, py::arg("offload_kqv") = true,
             "llama_init_from_model")
        .def_readonly("model", &ContextHandle::model)
        .def_property_readonly("n_ctx", [](const ContextHandle & h) { return llama_n_ctx(h.ctx); })
        .def_property_readonly("n_ctx_seq", [](const ContextHandle & h) { return llama_n_ctx_seq(h.ctx); })
        .def_property_readonly("n_batch", [](const ContextHandle & h) { return llama_n_batch(h.ctx); })
        .def_property_readonly("n_ubatch", [](const ContextHandle & h) { return llama_n_ubatch(h.ctx); })
        .def_property_readonly("n_seq_max", [](const ContextHandle & h) { return h.n_seq_max; })
        .def_property_readonly("n_threads", [](const ContextHandle & h) { return llama_n_threads(h.ctx); })
        .def_property_readonly("pooling", [](const ContextHandle & h) { return pooling_name(llama_pooling_type(h.ctx)); })
        .def("set_n_threads", [](ContextHandle & h, int32_t n, int32_t nb) {
            if (n <= 0) raise_value("n_threads must be positive");
            check_threads(n);
            check_threads(nb);
            std::lock_guard<std::mutex> lock(h.mutex);
            llama_set_n_threads(h.ctx, n, nb > 0 ? nb : n);
            if (h.threadpool) attach_threadpools(h, n, nb > 0 ? nb : n);  // grows the pool if needed
        }, py::arg("n_threads"), py::arg("n_threads_batch") = 0)
        .def("share_threadpool", [](const ContextPtr & h, const ContextPtr & other) {
            if (!other || other.get() == h.get()) raise_value("share_threadpool needs another context");
            std::scoped_lock lock(h->mutex, other->mutex);
            if (!other->threadpool) raise_value("the other context has no thread pool");
            if (other->threadpool_owner) raise_value("the other context runs on a borrowed thread pool");
            llama_detach_threadpool(h->ctx);
            if (h->threadpool) h->retired_threadpools.push_back(h->threadpool);
            h->threadpool = nullptr;
            h->threadpool_size = 0;
            llama_attach_threadpool(h->ctx, other->threadpool, nullptr);
            h->threadpool_owner = other;
        }, py::arg("other"),
           "run on `other`'s CPU thread pool: for contexts used one after the other from one thread (a "
           "draft model beside its model), so that one pool's idle workers never poll for cores the "
           "other's need")
        .def("set_embeddings", [](ContextHandle & h, bool on) {
            std::lock_guard<std::mutex> lock(h.mutex);
            llama_set_embeddings(h.ctx, on);
            h.embeddings = on;
        }, py::arg("on"))
        .def("set_causal_attn", [](ContextHandle & h, bool on) {
            std::lock_guard<std::mutex> lock(h.mutex);
            llama_set_causal_attn(h.ctx, on);
        }, py::arg("on"))
        .def("decode", [](ContextHandle & h, BatchHandle & b) { return run_batch(h, b, false); }, py::arg("batch"),
             "llama_decode (GIL released): 0 ok, 1 no KV slot, 2 aborted; errors raise RuntimeError")
        .def("encode", [](ContextHandle & h, BatchHandle & b) { return run_batch(h, b, true); }, py::arg("batch"),
             "llama_encode (GIL released)")
        .def("abort", [](ContextHandle & h) { h.abort = true; }, "make a running decode return 2 (any thread)")
        // llama_get_logits_ith: nullptr for an index without output (checked before).
        .def("logits", [](ContextHandle & h, int32_t i) {
            std::lock_guard<std::mutex> lock(h.mutex);
            h.check_output(i);
            const float * p = llama_get_logits_ith(h.ctx, i);
            if (!p) raise_index("no logits for batch index " + std::to_string(i));
            return copy_floats(p, h.model->n_vocab);
        }, py::arg("i") = -1, "logits of batch index i of the last decode (a copy: llama.cpp reuses its buffer)")
        .def("embeddings_ith", [](ContextHandle & h, int32_t i) {
            std::lock_guard<std::mutex> lock(h.mutex);
            if (!h.embeddings) raise_value("context was not created with embeddings=True");
            h.check_output(i);
            const float * p = llama_get_embeddings_ith(h.ctx, i);
            if (!p) raise_index("no embeddings for batch index " + std::to_string(i));
            return copy_floats(p, llama_model_n_embd_out(h.model->model));
        }, py::arg("i") = -1)
        .def("embeddings_seq", [](ContextHandle & h, int64_t seq) {
            std::lock_guard<std::mutex> lock(h.mutex);
            if (!h.embeddings) raise_value("context was not created with embeddings=True");
            h.check_seq(seq);
            const float * p = llama_get_embeddings_seq(h.ctx, static_cast<llama_seq_id>(seq));
            if (!p) raise_index("no pooled embeddings for sequence " + std::to_string(seq));
            const bool rank = llama_pooling_type(h.ctx) == LLAMA_POOLING_TYPE_RANK;
            size_t n = rank ? std::max<uint32_t>(1, llama_model_n_cls_out(h.model->model))
                            : static_cast<size_t>(llama_model_n_embd_out(h.model->model));
            return copy_floats(p, n);
        }, py::arg("seq_id"), "pooled embedding of a sequence (pooling != none)")
        // KV memory (llama_memory_*): positions p0 < 0 and p1 < 0 mean "from start" / "to end".
        .def("memory_clear", [](ContextHandle & h, bool data) {
            std::lock_guard<std::mutex> lock(h.mutex);
            llama_memory_clear(llama_get_memory(h.ctx), data);
        }, py::arg("data") = true)
        .def("seq_rm", [](ContextHandle & h, int64_t seq, int64_t p0, int64_t p1) {
            if (seq != -1) h.check_seq(seq);
            std::lock_guard<std::mutex> lock(h.mutex);
            return llama_memory_seq_rm(llama_get_memory(h.ctx), seq, p0, p1);
        }, py::arg("seq_id"), py::arg("p0") = -1, py::arg("p1") = -1, "llama_memory_seq_rm: False if a partial removal is impossible")
        .def("seq_cp", [](ContextHandle & h, int64_t src, int64_t dst, int64_t p0, int64_t p1) {
            h.check_seq(src); h.check_seq(dst);
            std::lock_guard<std::mutex> lock(h.mutex);
            llama_memory_seq_cp(llama_get_memory(h.ctx), src, dst, p0, p1);
        }, py::arg("src"), py::arg("dst"), py::arg("p0") = -1, py::arg("p1") = -1)
        .def("seq_keep", [](ContextHandle & h, int64_t seq) {
            h.check_seq(seq);
            std::lock_guard<std::mutex> lock(h.mutex);
            llama_memory_seq_keep(llama_get_memory(h.ctx), seq);
        }, py::arg("seq_id"))
        .def("seq_add", [](ContextHandle & h, int64_t seq, int64_t p0, int64_t p1, int64_t delta) {
            h.check_seq(seq);
            std::lock_guard<std::mutex> lock(h.mutex);
            if (!llama_memory_can_shift(llama_get_memory(h.ctx))) raise_value("this context cannot shift positions");
            llama_memory_seq_add(llama_get_memory(h.ctx), seq, p0, p1, delta);
        }, py::arg("seq_id"), py::arg("p0"), py::arg("p1"), py::arg("delta"), "shift positions [p0, p1) by delta")
        .def("seq_div", [](ContextHandle & h, int64_t seq, int64_t p0, int64_t p1, int d) {
            h.check_seq(seq);
            if (d <= 0) raise_value("divisor must be positive");
            std::lock_guard<std::mutex> lock(h.mutex);
            if (!llama_memory_can_shift(llama_get_memory(h.ctx))) raise_value("this context cannot shift positions");
            llama_memory_seq_div(llama_get_memory(h.ctx), seq, p0, p1, d);
        }, py::arg("seq_id"), py::arg("p0"), py::arg("p1"), py::arg("d"))
        .def("seq_pos_min", [](ContextHandle & h, int64_t seq) {
            h.check_seq(seq);
            std::lock_guard<std::mutex> lock(h.mutex);
            return llama_memory_seq_pos_min(llama_get_memory(h.ctx), seq);
        }, py::arg("seq_id"), "-1 when the sequence is empty")
        .def("seq_pos_max", [](ContextHandle & h, int64_t seq) {
            h.check_seq(seq);
            std::lock_guard<std::mutex> lock(h.mutex);
            return llama_memory_seq_pos_max(llama_get_memory(h.ctx), seq);
        }, py::arg("seq_id"), "-1 when the sequence is empty")
        .def_property_readonly("can_shift", [](ContextHandle & h) { return llama_memory_can_shift(llama_get_memory(h.ctx)); })
        // llama_state_seq_get_data / set_data: 0 on failure.
        .def("seq_state", [](ContextHandle & h, int64_t seq) {
            h.check_seq(seq);
            std::lock_guard<std::mutex> lock(h.mutex);
            size_t n = llama_state_seq_get_size(h.ctx, seq);
            std::string buf(n, '\0');
            size_t got = llama_state_seq_get_data(h.ctx, reinterpret_cast<uint8_t *>(buf.data()), n, seq);
            buf.resize(got);
            return py::bytes(buf);
        }, py::arg("seq_id"), "save one sequence's KV state")
        .def("set_seq_state", [](ContextHandle & h, py::bytes data, int64_t seq) {
            h.check_seq(seq);
            std::string buf = data;
            std::lock_guard<std::mutex> lock(h.mutex);
            size_t used = llama_state_seq_set_data(h.ctx, reinterpret_cast<const uint8_t *>(buf.data()), buf.size(), seq);
            if (used == 0) raise_value("state does not fit this context");
            return used;
        }, py::arg("data"), py::arg("seq_id"), "restore a sequence's KV state (saved by seq_state)")
        .def("set_lora", [](ContextHandle & h, const std::vector<std::pair<std::shared_ptr<LoraHandle>, float>> & adapters) {
            std::vector<llama_adapter_lora *> ptrs;
            std::vector<float> scales;
            for (const auto & [a, s] : adapters) {
                if (!a || a->model.get() != h.model.get()) raise_value("adapter belongs to another model");
                ptrs.push_back(a->adapter);
                scales.push_back(s);
            }
            std::lock_guard<std::mutex> lock(h.mutex);
            // llama_set_adapters_lora: 0 on success.
            if (llama_set_adapters_lora(h.ctx, ptrs.data(), ptrs.size(), scales.data()) != 0) {
                raise_runtime("failed to apply LoRA adapters");
            }
            h.loras.clear();
            for (const auto & entry : adapters) h.loras.push_back(entry.first);
        }, py::arg("adapters"), "list of (LoraAdapter, scale)")
        .def("perf", [](ContextHandle & h) {
            llama_perf_context_data d = llama_perf_context(h.ctx);
            py::dict out;
            out["t_start_ms"] = d.t_start_ms;
            out["t_load_ms"] = d.t_load_ms;
            out["t_p_eval_ms"] = d.t_p_eval_ms;
            out["t_eval_ms"] = d.t_eval_ms;
            out["n_p_eval"] = d.n_p_eval;
            out["n_eval"] = d.n_eval;
            out["n_reused"] = d.n_reused;
            return out;
        }, "llama_perf_context")
        .def("perf_reset", [](ContextHandle & h) { llama_perf_context_reset(h.ctx); });
}

}  // namespace pyollama
