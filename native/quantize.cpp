// Quantization of a GGUF file to another type (llama_model_quantize).
#include "errors.hpp"
#include "handles.hpp"

#include <pybind11/stl.h>

#include <algorithm>
#include <cstdio>
#include <cctype>
#include <memory>
#include <string>
#include <utility>

namespace pyollama {

namespace {

const std::pair<const char *, llama_ftype> kFtypes[] = {
    {"F32", LLAMA_FTYPE_ALL_F32},      {"F16", LLAMA_FTYPE_MOSTLY_F16},       {"BF16", LLAMA_FTYPE_MOSTLY_BF16},
    {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0}, {"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},     {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},
    {"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1}, {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},     {"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K},
    {"Q2_K_S", LLAMA_FTYPE_MOSTLY_Q2_K_S}, {"Q3_K_S", LLAMA_FTYPE_MOSTLY_Q3_K_S}, {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M},
    {"Q3_K_L", LLAMA_FTYPE_MOSTLY_Q3_K_L}, {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S}, {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M},
    {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S}, {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M}, {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K},
    {"IQ4_NL", LLAMA_FTYPE_MOSTLY_IQ4_NL}, {"IQ4_XS", LLAMA_FTYPE_MOSTLY_IQ4_XS},
};

llama_ftype ftype_from_name(std::string name) {
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
    if (name == "Q4_K") name = "Q4_K_M";
    if (name == "Q5_K") name = "Q5_K_M";
    if (name == "Q3_K") name = "Q3_K_M";
    for (const auto & [n, t] : kFtypes) {
        if (name == n) return t;
    }
    raise_value("unsupported quantization type " + name);
}

}  // namespace

void bind_quantize(py::module_ & m) {
    m.def("quantize_types", [] {
        std::vector<std::string> out;
        for (const auto & [n, t] : kFtypes) out.emplace_back(n);
        return out;
    });
    m.def("quantize", [](const std::string & src, const std::string & dst, const std::string & type, int32_t n_threads,
                         bool allow_requantize, bool pure, py::object progress) {
        ensure_backend("");
        if (n_threads < 0 || n_threads > 512) raise_value("n_threads must be in [0, 512]");
        {
            // gguf parsing of a missing/empty path crashes inside llama.cpp: check first.
            FILE * f = src.empty() ? nullptr : std::fopen(src.c_str(), "rb");
            if (!f) raise_runtime("quantization of " + (src.empty() ? std::string("an empty path") : src) + " failed: cannot open it");
            std::fclose(f);
        }
        if (dst.empty()) raise_value("empty destination path");
        llama_model_quantize_params p = llama_model_quantize_default_params();
        p.ftype = ftype_from_name(type);
        p.nthread = n_threads;
        p.allow_requantize = allow_requantize;
        p.pure = pure;
        if (!progress.is_none() && !PyCallable_Check(progress.ptr())) throw py::type_error("progress must be callable or None");
        // llama_model_quantize reports nothing but its log: one "[   i/   n] name ..." line per
        // tensor, written on this thread. The tap turns those lines into progress(i, n) calls.
        std::unique_ptr<py::error_already_set> callback_error;
        LogTap tap = [&](ggml_log_level level, const char * text) {
            int done = 0, total = 0;
            if (level != GGML_LOG_LEVEL_INFO || callback_error || std::sscanf(text, "[%d/%d]", &done, &total) != 2) {
                return;
            }
            py::gil_scoped_acquire gil;
            try {
                progress(done, total);
            } catch (py::error_already_set & e) {
                callback_error = std::make_unique<py::error_already_set>(std::move(e));
            }
        };
        uint32_t rc;
        {
            py::gil_scoped_release release;
            if (!progress.is_none()) set_thread_log_tap(&tap);
            // llama_model_quantize: 0 on success.
            rc = llama_model_quantize(src.c_str(), dst.c_str(), &p);
            set_thread_log_tap(nullptr);
        }
        if (callback_error) throw std::move(*callback_error);
        if (rc != 0) raise_runtime("quantization of " + src + " to " + type + " failed");
    }, py::arg("src"), py::arg("dst"), py::arg("type"), py::arg("n_threads") = 0, py::arg("allow_requantize") = false,
       py::arg("pure") = false, py::arg("progress") = py::none(),
       "llama_model_quantize (GIL released); type like Q4_K_M, Q8_0, F16; progress(i, n) after each tensor");
}

}  // namespace pyollama
