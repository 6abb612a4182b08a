// pyollama._native: the private compiled module. The friendly API lives in
// pyollama.llama; this module only checks arguments and calls llama.cpp.
#include "errors.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_native, m) {
    m.doc() = "pyollama's bindings to llama.cpp (private; use pyollama.llama)";
#ifdef PYOLLAMA_VERSION
    m.attr("__version__") = PYOLLAMA_VERSION;
#endif
    pyollama::bind_system(m);
    pyollama::bind_model(m);
    pyollama::bind_context(m);
    pyollama::bind_batch(m);
    pyollama::bind_sampler(m);
    pyollama::bind_chat(m);
    pyollama::bind_quantize(m);
    pyollama::bind_rpc(m);
    pyollama::bind_mtmd(m);
    pyollama::bind_attention(m);
    pyollama::bind_json(m);
}
