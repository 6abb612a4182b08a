// Owning handles shared between binding files. Python objects hold these by
// shared_ptr, so a Context keeps its Model alive and a freed model can never be
// reached from Python.
#pragma once

#include "llama.h"

#include <functional>
#include <memory>
#include <string>

namespace pyollama {

struct ModelHandle {
    llama_model * model = nullptr;
    const llama_vocab * vocab = nullptr;
    int32_t n_vocab = 0;
    std::string path;
    bool repack = true;  // loaded with the CPU's extra buffer types (AMX, repacked weights)

    ~ModelHandle() {
        if (model) {
            llama_model_free(model);
        }
    }
};

struct LoraHandle {
    std::shared_ptr<ModelHandle> model;  // an adapter is only valid with its model
    llama_adapter_lora * adapter = nullptr;
    std::string path;

    ~LoraHandle() {
        // llama_adapter_lora_free: adapters are also freed with the model; free only while it lives
        if (adapter && model && model->model) {
            llama_adapter_lora_free(adapter);
        }
    }
};

using ModelPtr = std::shared_ptr<ModelHandle>;

void ensure_backend(const std::string & backend_dir);

// A tap on llama.cpp's log for the calling thread only (quantize reads its per-tensor lines for
// progress); set to nullptr to remove. The tap runs inside llama.cpp's call, without the GIL.
using LogTap = std::function<void(ggml_log_level level, const char * text)>;
void set_thread_log_tap(const LogTap * tap);

inline void check_token(const ModelHandle & m, int64_t token) {
    if (token < 0 || token >= m.n_vocab) {
        throw pybind11::index_error("token id " + std::to_string(token) + " out of range [0, " +
                                    std::to_string(m.n_vocab) + ")");
    }
}

}  // namespace pyollama

namespace pyollama {

// llama_batch_init'ed storage with capacity checks; tokens only (no embd input).
struct BatchHandle {
    llama_batch batch{};
    int32_t capacity = 0;
    int32_t n_seq_max = 1;   // per-token sequence-id capacity

    BatchHandle(int32_t cap, int32_t seq_max) : capacity(cap), n_seq_max(seq_max) {
        batch = llama_batch_init(cap, 0, seq_max);
        batch.n_tokens = 0;
    }
    ~BatchHandle() { llama_batch_free(batch); }
    BatchHandle(const BatchHandle &) = delete;
    BatchHandle & operator=(const BatchHandle &) = delete;
};

struct ContextHandle;

}  // namespace pyollama

#include <atomic>
#include <mutex>
#include <vector>

namespace pyollama {

// A llama_context plus what we need to check every call made on it.
struct ContextHandle {
    ModelPtr model;
    llama_context * ctx = nullptr;
    uint32_t n_seq_max = 1;
    uint32_t n_batch = 0;
    bool embeddings = false;
    std::vector<int8_t> last_outputs;   // output flags of the last decoded batch (index -> has output)
    std::atomic<bool> abort{false};     // read by the abort callback from compute threads
    std::mutex mutex;                   // one native call at a time on this context
    // the adapters set_lora applied: the context reads them at every decode, so it owns them
    // (freed after llama_free, since members outlive the destructor's body)
    std::vector<std::shared_ptr<LoraHandle>> loras;

    // The ggml CPU thread pool attached to ctx, sized for the larger of n_threads and
    // n_threads_batch (a pool runs a graph with fewer threads than it has). Without it ggml starts
    // and joins fresh threads for every graph, i.e. for every generated token. A pool replaced by
    // a larger one is retired, not freed: the CPU backend keeps a pointer to the pool it ran last
    // and pauses that pool when handed the next one, so every pool must outlive the context.
    ggml_threadpool * threadpool = nullptr;
    int32_t threadpool_size = 0;
    std::vector<ggml_threadpool *> retired_threadpools;
    void (*threadpool_free)(ggml_threadpool *) = nullptr;
    // A context that runs on another context's pool (share_threadpool) keeps that context alive,
    // and so its pool, for as long as it may compute (released after llama_free).
    std::shared_ptr<ContextHandle> threadpool_owner;

    ~ContextHandle() {
        if (ctx) {
            llama_free(ctx);
        }
        if (threadpool_free) {
            for (ggml_threadpool * pool : retired_threadpools) threadpool_free(pool);
            if (threadpool) threadpool_free(threadpool);
        }
    }

    void check_output(int32_t i) const {
        if (i < 0) {
            i += static_cast<int32_t>(last_outputs.size());
        }
        if (i < 0 || i >= static_cast<int32_t>(last_outputs.size()) || !last_outputs[i]) {
            throw pybind11::index_error("batch index " + std::to_string(i) + " has no output in the last decode");
        }
    }
    void check_seq(int64_t seq) const {
        if (seq < 0 || seq >= static_cast<int64_t>(n_seq_max)) {
            throw pybind11::index_error("sequence id " + std::to_string(seq) + " out of range [0, " +
                                        std::to_string(n_seq_max) + ")");
        }
    }
};

using ContextPtr = std::shared_ptr<ContextHandle>;

}  // namespace pyollama
