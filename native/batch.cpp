// Batches of tokens with positions, sequence ids and output flags.
#include "errors.hpp"
#include "handles.hpp"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <vector>

namespace pyollama {

namespace {

constexpr int32_t kMaxBatchTokens = 1 << 20;

void add_token(BatchHandle & b, int64_t token, int64_t pos, const std::vector<int64_t> & seq_ids, bool logits) {
    if (b.batch.n_tokens >= b.capacity) {
        raise_index("batch is full (capacity " + std::to_string(b.capacity) + ")");
    }
    if (seq_ids.empty() || static_cast<int32_t>(seq_ids.size()) > b.n_seq_max) {
        raise_value("a token needs 1.." + std::to_string(b.n_seq_max) + " sequence ids");
    }
    if (token < 0 || token > INT32_MAX) raise_index("token id " + std::to_string(token) + " out of range");
    if (pos < 0 || pos > INT32_MAX) raise_index("position " + std::to_string(pos) + " out of range");
    const int32_t i = b.batch.n_tokens;
    b.batch.token[i] = static_cast<llama_token>(token);
    b.batch.pos[i] = static_cast<llama_pos>(pos);
    b.batch.n_seq_id[i] = static_cast<int32_t>(seq_ids.size());
    for (size_t k = 0; k < seq_ids.size(); ++k) {
        if (seq_ids[k] < 0 || seq_ids[k] > INT32_MAX) raise_index("sequence id out of range");
        b.batch.seq_id[i][k] = static_cast<llama_seq_id>(seq_ids[k]);
    }
    b.batch.logits[i] = logits;
    b.batch.n_tokens++;
}

}  // namespace

void bind_batch(py::module_ & m) {
    py::class_<BatchHandle, std::shared_ptr<BatchHandle>>(m, "Batch")
        .def(py::init([](int32_t capacity, int32_t n_seq_max) {
            // llama_batch_init allocates capacity * n_seq_max ids without overflow checks: bound both.
            if (capacity <= 0 || capacity > kMaxBatchTokens) {
                raise_value("batch capacity must be in [1, " + std::to_string(kMaxBatchTokens) + "]");
            }
            const int32_t seq_limit = static_cast<int32_t>(llama_max_parallel_sequences());
            if (n_seq_max <= 0 || n_seq_max > seq_limit) {
                raise_value("n_seq_max must be in [1, " + std::to_string(seq_limit) + "]");
            }
            return std::make_shared<BatchHandle>(capacity, n_seq_max);
        }), py::arg("capacity"), py::arg("n_seq_max") = 1, "llama_batch_init(capacity, 0, n_seq_max)")
        .def_readonly("capacity", &BatchHandle::capacity)
        .def_property_readonly("n_tokens", [](const BatchHandle & b) { return b.batch.n_tokens; })
        .def("__len__", [](const BatchHandle & b) { return b.batch.n_tokens; })
        .def("clear", [](BatchHandle & b) { b.batch.n_tokens = 0; })
        .def("add", [](BatchHandle & b, int64_t token, int64_t pos, py::object seq, bool logits) {
            std::vector<int64_t> ids;
            if (py::isinstance<py::int_>(seq)) {
                ids.push_back(seq.cast<int64_t>());
            } else {
                ids = seq.cast<std::vector<int64_t>>();
            }
            add_token(b, token, pos, ids, logits);
        }, py::arg("token"), py::arg("pos"), py::arg("seq_id") = 0, py::arg("logits") = false)
        .def("add_sequence", [](BatchHandle & b, const std::vector<int64_t> & tokens, int64_t pos0, int64_t seq_id,
                                 bool logits_last) {
            if (b.batch.n_tokens + static_cast<int64_t>(tokens.size()) > b.capacity) {
                raise_index("batch capacity " + std::to_string(b.capacity) + " exceeded");
            }
            std::vector<int64_t> ids{seq_id};
            for (size_t i = 0; i < tokens.size(); ++i) {
                add_token(b, tokens[i], pos0 + static_cast<int64_t>(i), ids, logits_last && i + 1 == tokens.size());
            }
        }, py::arg("tokens"), py::arg("pos0"), py::arg("seq_id") = 0, py::arg("logits_last") = true,
           "append tokens at consecutive positions of one sequence; only the last one outputs logits")
        .def("set_logits", [](BatchHandle & b, int32_t i, bool on) {
            check_range(i, 0, b.batch.n_tokens, "batch index");
            b.batch.logits[i] = on;
        }, py::arg("i"), py::arg("on") = true)
        .def("token", [](const BatchHandle & b, int32_t i) { check_range(i, 0, b.batch.n_tokens, "batch index"); return b.batch.token[i]; })
        .def("pos", [](const BatchHandle & b, int32_t i) { check_range(i, 0, b.batch.n_tokens, "batch index"); return b.batch.pos[i]; });
}

}  // namespace pyollama
