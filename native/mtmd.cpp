// Multimodal input through llama.cpp's mtmd library: a projector (mmproj GGUF) loaded next
// to a text model turns images into embeddings that are decoded into a context's sequence.
#include "errors.hpp"
#include "handles.hpp"

#include <pybind11/stl.h>

#include "mtmd-helper.h"
#include "mtmd.h"

#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pyollama {

namespace {

// A loaded projector. mtmd_tokenize is thread-safe; encoding and mtmd_helper_eval_chunks are not,
// so `mutex` serialises them.
struct MtmdHandle {
    ModelPtr model;  // the projector's embeddings are only valid for this text model
    mtmd_context * ctx = nullptr;
    std::string path;
    std::mutex mutex;

    ~MtmdHandle() {
        if (ctx) {
            mtmd_free(ctx);
        }
    }
};

using MtmdPtr = std::shared_ptr<MtmdHandle>;

// A tokenized multimodal prompt: text tokens and preprocessed images, in order.
struct ChunksHandle {
    MtmdPtr owner;
    mtmd_input_chunks * chunks = nullptr;

    ~ChunksHandle() {
        if (chunks) {
            mtmd_input_chunks_free(chunks);
        }
    }
};

using ChunksPtr = std::shared_ptr<ChunksHandle>;

struct BitmapDeleter {
    void operator()(mtmd_bitmap * b) const { mtmd_bitmap_free(b); }
};
using BitmapPtr = std::unique_ptr<mtmd_bitmap, BitmapDeleter>;

// mtmd logs through its own callback; route it to llama.cpp's (pyollama's level filter) once.
void route_mtmd_logs() {
    static std::once_flag once;
    std::call_once(once, [] {
        ggml_log_callback callback = nullptr;
        void * user_data = nullptr;
        llama_log_get(&callback, &user_data);
        mtmd_helper_log_set(callback, user_data);
    });
}

MtmdPtr make_mtmd(ModelPtr model, const std::string & path, int32_t n_threads, bool use_gpu, bool warmup) {
    if (!model || !model->model) raise_value("a loaded model is required");
    if (llama_model_n_layer(model->model) == 0) raise_value("a vocab-only model cannot take a projector");
    if (n_threads < 0) raise_value("n_threads must be >= 0");
    if (path.empty() || !std::ifstream(path, std::ios::binary).good()) {
        raise_value("projector file not found or unreadable: " + path);
    }
    ensure_backend("");
    route_mtmd_logs();
    mtmd_context_params params = mtmd_context_params_default();
    params.use_gpu = use_gpu;
    params.print_timings = false;
    params.warmup = warmup;
    if (n_threads > 0) params.n_threads = n_threads;
    auto h = std::make_shared<MtmdHandle>();
    h->model = model;
    h->path = path;
    {
        py::gil_scoped_release release;
        // mtmd_init_from_file: nullptr on failure (bad file, unknown projector, n_embd mismatch).
        h->ctx = mtmd_init_from_file(path.c_str(), model->model, params);
    }
    if (!h->ctx) {
        raise_runtime("failed to load projector from " + path +
                      " (not an mmproj GGUF, an unsupported projector, or one made for another model)");
    }
    return h;
}

size_t count_markers(const std::string & text, const std::string & marker) {
    size_t n = 0;
    for (size_t pos = text.find(marker); pos != std::string::npos; pos = text.find(marker, pos + marker.size())) {
        ++n;
    }
    return n;
}

ChunksPtr tokenize(const MtmdPtr & h, const std::string & text, const std::vector<py::bytes> & media,
                   bool add_special, bool parse_special) {
    const std::string marker = mtmd_default_marker();
    const size_t n_markers = count_markers(text, marker);
    if (n_markers != media.size()) {
        raise_value("the prompt has " + std::to_string(n_markers) + " media markers but " +
                    std::to_string(media.size()) + " images were given");
    }
    std::vector<std::string> buffers;
    buffers.reserve(media.size());
    for (const auto & item : media) {
        buffers.emplace_back(item);  // copied with the GIL held; decoded without it
    }
    std::vector<BitmapPtr> bitmaps;
    auto out = std::make_shared<ChunksHandle>();
    out->owner = h;
    int32_t rc = 0;
    size_t bad = buffers.size();
    {
        py::gil_scoped_release release;
        for (size_t i = 0; i < buffers.size(); ++i) {
            const auto & buf = buffers[i];
            if (buf.empty()) {
                bad = i;
                break;
            }
            // mtmd_helper_bitmap_init_from_buf: {nullptr, ...} when the bytes are no image/audio it can decode.
            mtmd_helper_bitmap_wrapper w = mtmd_helper_bitmap_init_from_buf(
                h->ctx, reinterpret_cast<const unsigned char *>(buf.data()), buf.size(), false,
                mtmd_helper_init_opt_default());
            if (w.video_ctx) {
                mtmd_helper_video_free(w.video_ctx);  // video input is not supported here
                if (w.bitmap) mtmd_bitmap_free(w.bitmap);
                bad = i;
                break;
            }
            if (!w.bitmap) {
                bad = i;
                break;
            }
            bitmaps.emplace_back(w.bitmap);
        }
        if (bad == buffers.size()) {
            std::vector<const mtmd_bitmap *> ptrs;
            for (const auto & b : bitmaps) ptrs.push_back(b.get());
            mtmd_input_text input{};
            input.text = text.data();
            input.text_len = text.size();
            input.add_special = add_special;
            input.parse_special = parse_special;
            out->chunks = mtmd_input_chunks_init();
            // mtmd_tokenize: 0 ok, 1 markers and bitmaps differ in number, 2 media preprocessing failed.
            rc = mtmd_tokenize(h->ctx, out->chunks, &input, ptrs.data(), ptrs.size());
        }
    }
    if (bad != buffers.size()) {
        raise_value("image " + std::to_string(bad) + " could not be decoded (expected PNG, JPEG, BMP or GIF data)");
    }
    if (rc == 1) raise_value("the number of media markers does not match the number of images");
    if (rc == 2) raise_value("an image could not be preprocessed for this projector");
    if (rc != 0) raise_runtime("mtmd_tokenize failed with code " + std::to_string(rc));
    for (size_t i = 0; i < mtmd_input_chunks_size(out->chunks); ++i) {
        const mtmd_input_chunk * c = mtmd_input_chunks_get(out->chunks, i);
        if (mtmd_input_chunk_get_type(c) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
            size_t n = 0;
            const llama_token * toks = mtmd_input_chunk_get_tokens_text(c, &n);
            for (size_t k = 0; k < n; ++k) check_token(*h->model, toks[k]);
        }
    }
    return out;
}

const char * chunk_type_name(enum mtmd_input_chunk_type t) {
    switch (t) {
        case MTMD_INPUT_CHUNK_TYPE_TEXT: return "text";
        case MTMD_INPUT_CHUNK_TYPE_IMAGE: return "image";
        case MTMD_INPUT_CHUNK_TYPE_AUDIO: return "audio";
        default: return "unknown";
    }
}

// Evaluates every chunk into `seq_id` from position `n_past`: text is decoded, images are encoded by
// the projector and their embeddings decoded. Returns the new n_past. Only the last text token
// outputs logits (read them with index -1).
int64_t eval_chunks(const MtmdPtr & h, ContextHandle & ctx, const ChunksHandle & chunks, int64_t n_past,
                    int64_t seq_id, int32_t n_batch) {
    if (chunks.owner.get() != h.get()) raise_value("chunks were tokenized by another projector");
    if (ctx.model.get() != h->model.get()) raise_value("the context belongs to another model than the projector");
    if (ctx.embeddings) raise_value("an embeddings context cannot take multimodal input");
    ctx.check_seq(seq_id);
    if (n_past < 0 || n_past > INT32_MAX) raise_index("n_past " + std::to_string(n_past) + " out of range");
    if (n_batch < 0) raise_value("n_batch must be >= 0");
    const int32_t max_batch = static_cast<int32_t>(ctx.n_batch);
    const int32_t nb = n_batch == 0 ? max_batch : std::min(n_batch, max_batch);
    const size_t n_chunks = mtmd_input_chunks_size(chunks.chunks);
    if (n_chunks == 0) raise_value("no chunks to evaluate");
    const llama_pos n_pos = mtmd_helper_get_n_pos(chunks.chunks);
    const int64_t n_ctx_seq = llama_n_ctx_seq(ctx.ctx);
    if (n_past + n_pos > n_ctx_seq) {
        raise_value("the prompt needs " + std::to_string(n_past + n_pos) + " positions but the sequence holds " +
                    std::to_string(n_ctx_seq));
    }
    const mtmd_input_chunk * last = mtmd_input_chunks_get(chunks.chunks, n_chunks - 1);
    size_t n_last_batch = 0;  // tokens in the final decode, whose last one has logits
    if (mtmd_input_chunk_get_type(last) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
        size_t n = 0;
        mtmd_input_chunk_get_tokens_text(last, &n);
        n_last_batch = n == 0 ? 0 : (n - 1) % static_cast<size_t>(nb) + 1;
    }
    llama_pos new_n_past = static_cast<llama_pos>(n_past);
    int32_t rc;
    {
        py::gil_scoped_release release;
        std::lock_guard<std::mutex> lock_mtmd(h->mutex);
        std::lock_guard<std::mutex> lock_ctx(ctx.mutex);
        ctx.abort = false;
        // mtmd_helper_eval_chunks: 0 ok; otherwise the first failing encode/decode's code.
        rc = mtmd_helper_eval_chunks(h->ctx, ctx.ctx, chunks.chunks, static_cast<llama_pos>(n_past),
                                     static_cast<llama_seq_id>(seq_id), nb, true, &new_n_past);
        ctx.last_outputs.assign(n_last_batch, 0);
        if (rc == 0 && n_last_batch > 0) ctx.last_outputs.back() = 1;
    }
    if (rc != 0) {
        ctx.last_outputs.clear();
        raise_runtime("multimodal prompt evaluation failed with code " + std::to_string(rc) +
                      (rc == 1 ? " (no room in the KV cache)" : rc == 2 ? " (aborted)" : ""));
    }
    return new_n_past;
}

}  // namespace

void bind_mtmd(py::module_ & m) {
    m.def("mtmd_default_marker", [] { return std::string(mtmd_default_marker()); },
          "mtmd_default_marker: the text that stands for one image in a prompt given to MtmdContext.tokenize");

    py::class_<ChunksHandle, ChunksPtr>(m, "MtmdChunks")
        .def("__len__", [](const ChunksHandle & c) { return mtmd_input_chunks_size(c.chunks); })
        // mtmd_helper_get_n_tokens / _n_pos: totals over all chunks (positions differ for M-RoPE).
        .def_property_readonly("n_tokens", [](const ChunksHandle & c) { return mtmd_helper_get_n_tokens(c.chunks); })
        .def_property_readonly("n_pos", [](const ChunksHandle & c) { return mtmd_helper_get_n_pos(c.chunks); })
        .def("types", [](const ChunksHandle & c) {
            std::vector<std::string> out;
            for (size_t i = 0; i < mtmd_input_chunks_size(c.chunks); ++i) {
                out.emplace_back(chunk_type_name(mtmd_input_chunk_get_type(mtmd_input_chunks_get(c.chunks, i))));
            }
            return out;
        }, "the type of each chunk: 'text', 'image' or 'audio'")
        .def("tokens", [](const ChunksHandle & c, int64_t i) {
            check_range(i, 0, static_cast<int64_t>(mtmd_input_chunks_size(c.chunks)), "chunk index");
            const mtmd_input_chunk * chunk = mtmd_input_chunks_get(c.chunks, static_cast<size_t>(i));
            std::vector<llama_token> out;
            if (mtmd_input_chunk_get_type(chunk) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
                size_t n = 0;
                const llama_token * toks = mtmd_input_chunk_get_tokens_text(chunk, &n);
                out.assign(toks, toks + n);
            }
            return out;
        }, py::arg("i"), "the text tokens of chunk i (empty for an image chunk)")
        .def("text_tokens", [](const ChunksHandle & c) {
            std::vector<llama_token> out;
            for (size_t i = 0; i < mtmd_input_chunks_size(c.chunks); ++i) {
                const mtmd_input_chunk * chunk = mtmd_input_chunks_get(c.chunks, i);
                if (mtmd_input_chunk_get_type(chunk) != MTMD_INPUT_CHUNK_TYPE_TEXT) continue;
                size_t n = 0;
                const llama_token * toks = mtmd_input_chunk_get_tokens_text(chunk, &n);
                out.insert(out.end(), toks, toks + n);
            }
            return out;
        }, "the text tokens of all text chunks, in order (image tokens left out)");

    py::class_<MtmdHandle, MtmdPtr>(m, "MtmdContext")
        .def(py::init(&make_mtmd), py::arg("model"), py::arg("projector_path"), py::arg("n_threads") = 0,
             py::arg("use_gpu") = true, py::arg("warmup") = true,
             "mtmd_init_from_file (GIL released): a projector for `model`; RuntimeError when it cannot load")
        .def_readonly("path", &MtmdHandle::path)
        .def_readonly("model", &MtmdHandle::model)
        // mtmd_support_* / mtmd_decode_use_mrope: capability flags of the loaded projector.
        .def_property_readonly("supports_vision", [](const MtmdHandle & h) { return mtmd_support_vision(h.ctx); })
        .def_property_readonly("supports_audio", [](const MtmdHandle & h) { return mtmd_support_audio(h.ctx); })
        .def_property_readonly("uses_mrope", [](const MtmdHandle & h) { return mtmd_decode_use_mrope(h.ctx); })
        .def("tokenize", [](const MtmdPtr & h, const std::string & text, const std::vector<py::bytes> & images,
                            bool add_special, bool parse_special) {
            return tokenize(h, text, images, add_special, parse_special);
        }, py::arg("text"), py::arg("images"), py::arg("add_special") = true, py::arg("parse_special") = true,
           "mtmd_tokenize: one mtmd_default_marker() per image in `text`; images are encoded file bytes "
           "(PNG, JPEG, BMP, GIF). ValueError for undecodable images or a marker count mismatch")
        .def("eval", [](const MtmdPtr & h, ContextHandle & ctx, const ChunksHandle & chunks, int64_t n_past,
                        int64_t seq_id, int32_t n_batch) {
            return eval_chunks(h, ctx, chunks, n_past, seq_id, n_batch);
        }, py::arg("ctx"), py::arg("chunks"), py::arg("n_past"), py::arg("seq_id") = 0, py::arg("n_batch") = 0,
           "mtmd_helper_eval_chunks (GIL released): evaluate chunks into seq_id at n_past; returns the new "
           "n_past; the last token's logits are at index -1");
}

}  // namespace pyollama
