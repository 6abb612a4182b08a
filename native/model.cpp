// Model loading, metadata, vocabulary and tokenization; LoRA adapters.
#include "errors.hpp"
#include "handles.hpp"

#include <pybind11/stl.h>

#include <atomic>
#include <string>
#include <vector>

namespace pyollama {

namespace {

struct ProgressState {
    py::object callback;           // called with the GIL held
    std::atomic<bool> canceled{false};
    std::string error;
};

// llama_progress_callback: runs on the loading thread without the GIL.
bool on_progress(float progress, void * user_data) {
    auto * state = static_cast<ProgressState *>(user_data);
    if (state->callback.is_none()) {
        return true;
    }
    py::gil_scoped_acquire gil;
    try {
        py::object result = state->callback(progress);
        if (!result.is_none() && !result.cast<bool>()) {
            state->canceled = true;
            return false;
        }
    } catch (py::error_already_set & e) {
        state->error = e.what();
        state->canceled = true;
        return false;
    }
    return true;
}

std::string read_meta(const llama_model * model, int32_t (*fn)(const llama_model *, int32_t, char *, size_t), int32_t i) {
    std::vector<char> buf(256);
    int32_t n = fn(model, i, buf.data(), buf.size());
    if (n < 0) {
        return {};
    }
    if (static_cast<size_t>(n) >= buf.size()) {
        buf.resize(n + 1);
        fn(model, i, buf.data(), buf.size());
    }
    return std::string(buf.data(), n);
}

// ": <reason>" from llama.cpp's error lines ("llama_model_load: error loading model: <reason>"),
// the innermost reason only; "" when it logged none.
std::string load_error_reason(const std::string & errors) {
    const std::string marker = "error loading model: ";
    std::string line;
    size_t at = errors.rfind(marker);
    if (at != std::string::npos) {
        line = errors.substr(at + marker.size());
    } else {
        line = errors;
    }
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    size_t nl = line.find('\n');
    if (nl != std::string::npos) line = line.substr(0, nl);
    return line.empty() ? std::string() : ": " + line;
}

ModelPtr load_model(const std::string & path, int n_gpu_layers, bool use_mmap, bool use_mlock, bool vocab_only,
                    int main_gpu, const py::object & progress, bool check_tensors, bool repack) {
    ensure_backend("");
    llama_model_params params = llama_model_default_params();
    params.n_gpu_layers = n_gpu_layers;
    // use_extra_bufts: the CPU backend's extra buffer types (AMX tiles, repacked weight layouts).
    params.use_extra_bufts = repack;
    params.vocab_only = vocab_only;
    params.main_gpu = main_gpu;
    params.check_tensors = check_tensors;
    if (use_mmap && use_mlock) {
        params.load_mode = LLAMA_LOAD_MODE_MMAP_MLOCK;
    } else if (use_mmap) {
        params.load_mode = LLAMA_LOAD_MODE_MMAP;
    } else if (use_mlock) {
        params.load_mode = LLAMA_LOAD_MODE_MLOCK;
    } else {
        params.load_mode = LLAMA_LOAD_MODE_NONE;
    }
    ProgressState state;
    state.callback = progress;
    params.progress_callback = on_progress;
    params.progress_callback_user_data = &state;

    llama_model * model = nullptr;
    // llama.cpp says why a load failed only in its log, on this thread: the error lines are
    // kept for the exception's text.
    std::string load_errors;
    LogTap tap = [&](ggml_log_level level, const char * text) {
        if (level == GGML_LOG_LEVEL_ERROR && load_errors.size() < 4096) load_errors += text;
    };
    {
        py::gil_scoped_release release;
        set_thread_log_tap(&tap);
        // llama_model_load_from_file: returns nullptr on failure or when the progress callback aborts.
        model = llama_model_load_from_file(path.c_str(), params);
        set_thread_log_tap(nullptr);
    }
    if (!state.error.empty()) {
        if (model) llama_model_free(model);
        raise_runtime("model load aborted by progress callback: " + state.error);
    }
    if (state.canceled) {
        if (model) llama_model_free(model);
        throw py::value_error("model load canceled");
    }
    if (!model) {
        raise_runtime("failed to load model from " + path + load_error_reason(load_errors));
    }
    auto handle = std::make_shared<ModelHandle>();
    handle->model = model;
    handle->vocab = llama_model_get_vocab(model);
    handle->n_vocab = llama_vocab_n_tokens(handle->vocab);
    handle->path = path;
    handle->repack = repack;
    return handle;
}

std::vector<llama_token> tokenize(const ModelHandle & m, const std::string & text, bool add_special, bool parse_special) {
    if (text.size() > static_cast<size_t>(INT32_MAX) / 2) {
        raise_value("text too long to tokenize");
    }
    std::vector<llama_token> tokens(text.size() + 2 * add_special + 1);
    int32_t n;
    {
        py::gil_scoped_release release;
        // llama_tokenize: returns the count, or -(needed) when the buffer is too small; INT32_MIN on overflow.
        n = llama_tokenize(m.vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                           static_cast<int32_t>(tokens.size()), add_special, parse_special);
        if (n < 0 && n != INT32_MIN) {
            tokens.resize(-n);
            n = llama_tokenize(m.vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                               static_cast<int32_t>(tokens.size()), add_special, parse_special);
        }
    }
    if (n < 0) {
        raise_runtime("tokenization failed");
    }
    tokens.resize(n);
    return tokens;
}

std::string piece(const ModelHandle & m, llama_token token, bool special) {
    check_token(m, token);
    char buf[256];
    // llama_token_to_piece: bytes written, or -(needed) when the buffer is too small.
    int32_t n = llama_token_to_piece(m.vocab, token, buf, sizeof(buf), 0, special);
    if (n >= 0) {
        return std::string(buf, n);
    }
    std::string out(-n, '\0');
    n = llama_token_to_piece(m.vocab, token, out.data(), static_cast<int32_t>(out.size()), 0, special);
    out.resize(n < 0 ? 0 : n);
    return out;
}

std::string detokenize(const ModelHandle & m, const std::vector<llama_token> & tokens, bool remove_special,
                       bool unparse_special) {
    for (llama_token t : tokens) {
        check_token(m, t);
    }
    std::string out(tokens.size() * 8 + 16, '\0');
    // llama_detokenize: bytes written, or -(needed) when the buffer is too small.
    int32_t n = llama_detokenize(m.vocab, tokens.data(), static_cast<int32_t>(tokens.size()), out.data(),
                                 static_cast<int32_t>(out.size()), remove_special, unparse_special);
    if (n < 0) {
        out.resize(-n);
        n = llama_detokenize(m.vocab, tokens.data(), static_cast<int32_t>(tokens.size()), out.data(),
                             static_cast<int32_t>(out.size()), remove_special, unparse_special);
    }
    out.resize(n < 0 ? 0 : n);
    return out;
}

py::object token_or_none(llama_token t) {
    return t == LLAMA_TOKEN_NULL ? py::none() : py::cast(t);
}

}  // namespace

void bind_model(py::module_ & m) {
    py::class_<ModelHandle, ModelPtr>(m, "Model")
        .def(py::init(&load_model), py::arg("path"), py::arg("n_gpu_layers") = 0, py::arg("use_mmap") = true,
             py::arg("use_mlock") = false, py::arg("vocab_only") = false, py::arg("main_gpu") = 0,
             py::arg("progress") = py::none(), py::arg("check_tensors") = false, py::arg("repack") = true,
             "llama_model_load_from_file (GIL released; progress(float)->bool|None may cancel)")
        .def_readonly("path", &ModelHandle::path)
        .def_readonly("repack", &ModelHandle::repack)
        .def_readonly("n_vocab", &ModelHandle::n_vocab)
        // llama_model_* scalar getters: never fail on a loaded model.
        .def_property_readonly("n_ctx_train", [](const ModelHandle & h) { return llama_model_n_ctx_train(h.model); })
        .def_property_readonly("n_embd", [](const ModelHandle & h) { return llama_model_n_embd(h.model); })
        .def_property_readonly("n_embd_out", [](const ModelHandle & h) { return llama_model_n_embd_out(h.model); })
        .def_property_readonly("n_layer", [](const ModelHandle & h) { return llama_model_n_layer(h.model); })
        .def_property_readonly("n_head", [](const ModelHandle & h) { return llama_model_n_head(h.model); })
        .def_property_readonly("n_head_kv", [](const ModelHandle & h) { return llama_model_n_head_kv(h.model); })
        .def_property_readonly("n_swa", [](const ModelHandle & h) { return llama_model_n_swa(h.model); })
        .def_property_readonly("n_params", [](const ModelHandle & h) { return llama_model_n_params(h.model); })
        .def_property_readonly("size", [](const ModelHandle & h) { return llama_model_size(h.model); })
        .def_property_readonly("has_encoder", [](const ModelHandle & h) { return llama_model_has_encoder(h.model); })
        .def_property_readonly("has_decoder", [](const ModelHandle & h) { return llama_model_has_decoder(h.model); })
        .def_property_readonly("is_recurrent", [](const ModelHandle & h) { return llama_model_is_recurrent(h.model); })
        .def_property_readonly("is_hybrid", [](const ModelHandle & h) { return llama_model_is_hybrid(h.model); })
        .def_property_readonly("n_cls_out", [](const ModelHandle & h) { return llama_model_n_cls_out(h.model); })
        .def_property_readonly("ftype", [](const ModelHandle & h) { return static_cast<int>(llama_model_ftype(h.model)); })
        .def_property_readonly("ftype_name", [](const ModelHandle & h) {
            return std::string(llama_ftype_name(llama_model_ftype(h.model)));
        })
        // llama_model_desc: bytes written (snprintf contract).
        .def_property_readonly("description", [](const ModelHandle & h) {
            char buf[256];
            int32_t n = llama_model_desc(h.model, buf, sizeof(buf));
            return std::string(buf, n < 0 ? 0 : std::min<int32_t>(n, sizeof(buf) - 1));
        })
        // llama_model_meta_*: -1 when the key/index is missing.
        .def("metadata", [](const ModelHandle & h) {
            py::dict d;
            int32_t n = llama_model_meta_count(h.model);
            for (int32_t i = 0; i < n; ++i) {
                std::string key = read_meta(h.model, llama_model_meta_key_by_index, i);
                std::string val = read_meta(h.model, llama_model_meta_val_str_by_index, i);
                d[py::str(key)] = py::bytes(val).attr("decode")("utf-8", "replace");
            }
            return d;
        }, "all GGUF key/values as strings (arrays are summarised by llama.cpp)")
        .def("meta", [](const ModelHandle & h, const std::string & key) -> py::object {
            std::vector<char> buf(256);
            int32_t n = llama_model_meta_val_str(h.model, key.c_str(), buf.data(), buf.size());
            if (n < 0) return py::none();
            if (static_cast<size_t>(n) >= buf.size()) {
                buf.resize(n + 1);
                llama_model_meta_val_str(h.model, key.c_str(), buf.data(), buf.size());
            }
            return py::bytes(std::string(buf.data(), n)).attr("decode")("utf-8", "replace");
        }, py::arg("key"))
        // llama_model_chat_template: nullptr when the model has none.
        .def("chat_template", [](const ModelHandle & h, py::object name) -> py::object {
            std::string n = name.is_none() ? std::string() : name.cast<std::string>();
            const char * t = llama_model_chat_template(h.model, n.empty() ? nullptr : n.c_str());
            return t ? py::cast(std::string(t)) : py::none();
        }, py::arg("name") = py::none())
        // vocabulary: special token ids (None when the model has none)
        .def_property_readonly("token_bos", [](const ModelHandle & h) { return token_or_none(llama_vocab_bos(h.vocab)); })
        .def_property_readonly("token_eos", [](const ModelHandle & h) { return token_or_none(llama_vocab_eos(h.vocab)); })
        .def_property_readonly("token_eot", [](const ModelHandle & h) { return token_or_none(llama_vocab_eot(h.vocab)); })
        .def_property_readonly("token_sep", [](const ModelHandle & h) { return token_or_none(llama_vocab_sep(h.vocab)); })
        .def_property_readonly("token_nl", [](const ModelHandle & h) { return token_or_none(llama_vocab_nl(h.vocab)); })
        .def_property_readonly("token_pad", [](const ModelHandle & h) { return token_or_none(llama_vocab_pad(h.vocab)); })
        .def_property_readonly("token_fim_pre", [](const ModelHandle & h) { return token_or_none(llama_vocab_fim_pre(h.vocab)); })
        .def_property_readonly("token_fim_suf", [](const ModelHandle & h) { return token_or_none(llama_vocab_fim_suf(h.vocab)); })
        .def_property_readonly("token_fim_mid", [](const ModelHandle & h) { return token_or_none(llama_vocab_fim_mid(h.vocab)); })
        .def_property_readonly("token_fim_pad", [](const ModelHandle & h) { return token_or_none(llama_vocab_fim_pad(h.vocab)); })
        .def_property_readonly("token_fim_rep", [](const ModelHandle & h) { return token_or_none(llama_vocab_fim_rep(h.vocab)); })
        .def_property_readonly("token_fim_sep", [](const ModelHandle & h) { return token_or_none(llama_vocab_fim_sep(h.vocab)); })
        .def_property_readonly("add_bos", [](const ModelHandle & h) { return llama_vocab_get_add_bos(h.vocab); })
        .def_property_readonly("add_eos", [](const ModelHandle & h) { return llama_vocab_get_add_eos(h.vocab); })
        .def_property_readonly("vocab_type", [](const ModelHandle & h) { return static_cast<int>(llama_vocab_type(h.vocab)); })
        .def("is_eog", [](const ModelHandle & h, int64_t t) { check_token(h, t); return llama_vocab_is_eog(h.vocab, t); }, py::arg("token"))
        .def("is_control", [](const ModelHandle & h, int64_t t) { check_token(h, t); return llama_vocab_is_control(h.vocab, t); }, py::arg("token"))
        .def("token_text", [](const ModelHandle & h, int64_t t) {
            check_token(h, t);
            return py::bytes(llama_vocab_get_text(h.vocab, t)).attr("decode")("utf-8", "replace");
        }, py::arg("token"))
        .def("token_score", [](const ModelHandle & h, int64_t t) { check_token(h, t); return llama_vocab_get_score(h.vocab, t); }, py::arg("token"))
        .def("token_attr", [](const ModelHandle & h, int64_t t) { check_token(h, t); return static_cast<int>(llama_vocab_get_attr(h.vocab, t)); }, py::arg("token"))
        .def("eog_tokens", [](const ModelHandle & h) {
            std::vector<llama_token> out;
            for (int32_t t = 0; t < h.n_vocab; ++t) {
                if (llama_vocab_is_eog(h.vocab, t)) out.push_back(t);
            }
            return out;
        })
        .def("tokenize", [](const ModelHandle & h, const std::string & text, bool add_special, bool parse_special) {
            return tokenize(h, text, add_special, parse_special);
        }, py::arg("text"), py::arg("add_special") = true, py::arg("parse_special") = false,
           "llama_tokenize (str or UTF-8 bytes in; GIL released)")
        .def("token_to_piece", [](const ModelHandle & h, int64_t t, bool special) {
            check_token(h, t);
            return py::bytes(piece(h, static_cast<llama_token>(t), special));
        }, py::arg("token"), py::arg("special") = true, "llama_token_to_piece: raw bytes (may be part of a UTF-8 character)")
        .def("detokenize_bytes", [](const ModelHandle & h, const std::vector<llama_token> & tokens, bool remove_special, bool unparse_special) {
            return py::bytes(detokenize(h, tokens, remove_special, unparse_special));
        }, py::arg("tokens"), py::arg("remove_special") = false, py::arg("unparse_special") = true)
        .def("detokenize", [](const ModelHandle & h, const std::vector<llama_token> & tokens, bool remove_special, bool unparse_special) {
            return py::bytes(detokenize(h, tokens, remove_special, unparse_special)).attr("decode")("utf-8", "replace");
        }, py::arg("tokens"), py::arg("remove_special") = false, py::arg("unparse_special") = true,
           "llama_detokenize, decoded as UTF-8 with replacement");

    py::class_<LoraHandle, std::shared_ptr<LoraHandle>>(m, "LoraAdapter")
        .def(py::init([](ModelPtr model, const std::string & path) {
            auto h = std::make_shared<LoraHandle>();
            h->model = model;
            h->path = path;
            {
                py::gil_scoped_release release;
                // llama_adapter_lora_init: nullptr on failure.
                h->adapter = llama_adapter_lora_init(model->model, path.c_str());
            }
            if (!h->adapter) {
                raise_runtime("failed to load LoRA adapter from " + path);
            }
            return h;
        }), py::arg("model"), py::arg("path"))
        .def_readonly("path", &LoraHandle::path);
}

}  // namespace pyollama
