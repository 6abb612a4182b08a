// One table of how native failures become Python exceptions.
//   ValueError   : a bad argument that we check before calling C
//   IndexError   : token id, sequence id, batch position or output row out of range
//   RuntimeError : llama.cpp reported a failure (load, decode, quantize...)
//   KeyError     : missing metadata key
// Every check happens before the C call, so no Python argument can crash the process.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace pyollama {

namespace py = pybind11;

[[noreturn]] inline void raise_value(const std::string & msg) { throw py::value_error(msg); }
[[noreturn]] inline void raise_index(const std::string & msg) { throw py::index_error(msg); }
[[noreturn]] inline void raise_runtime(const std::string & msg) { throw std::runtime_error(msg); }

inline void check_range(int64_t value, int64_t lo, int64_t hi_exclusive, const char * what) {
    if (value < lo || value >= hi_exclusive) {
        raise_index(std::string(what) + " " + std::to_string(value) + " out of range [" +
                    std::to_string(lo) + ", " + std::to_string(hi_exclusive) + ")");
    }
}

// Binding registration functions, one per concept (native/<concept>.cpp).
void bind_system(py::module_ & m);
void bind_model(py::module_ & m);
void bind_context(py::module_ & m);
void bind_batch(py::module_ & m);
void bind_sampler(py::module_ & m);
void bind_chat(py::module_ & m);
void bind_quantize(py::module_ & m);
void bind_rpc(py::module_ & m);
void bind_mtmd(py::module_ & m);
void bind_attention(py::module_ & m);
void bind_json(py::module_ & m);

}  // namespace pyollama
