// Attention probe: how long one layer's attention takes on this CPU with flash attention and
// with llama.cpp's other path (KQ matmul, soft-max, KQV matmul over a transposed V cache), for
// a model's head shape, a depth and a batch size. Which path is faster depends on the CPU
// family (ggml's CPU flash-attention kernel against its matmul kernels) and on the shape, so
// the runner measures instead of guessing (pyollama/engine/attention.py).
#include "errors.hpp"
#include "handles.hpp"

#include "ggml-cpu.h"
#include "ggml.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <vector>

namespace pyollama {

namespace {

struct GgmlContextFree {
    void operator()(ggml_context * ctx) const { ggml_free(ctx); }
};
struct ThreadpoolFree {
    void operator()(ggml_threadpool * tp) const { ggml_threadpool_free(tp); }
};

void fill(ggml_tensor * t, float scale) {
    const int64_t n = ggml_nelements(t);
    uint32_t state = 12345;
    for (int64_t i = 0; i < n; ++i) {
        state = state * 1664525u + 1013904223u;
        const float x = scale * (static_cast<float>(state >> 8) / 16777216.0f - 0.5f);
        if (t->type == GGML_TYPE_F16) {
            static_cast<ggml_fp16_t *>(t->data)[i] = ggml_fp32_to_fp16(x);
        } else {
            static_cast<float *>(t->data)[i] = x;
        }
    }
}

// Seconds per evaluation (the median of `reps`) of one layer's attention: `n_q` new tokens of
// `n_head` query heads against `n_kv` cached positions of `n_head_kv` heads (f16 cache).
double attention_seconds(int head_dim, int n_head, int n_head_kv, int n_kv, int n_q, int n_threads, bool flash,
                         int reps) {
    if (head_dim < 1 || head_dim > 1024 || n_head < 1 || n_head_kv < 1 || n_head % n_head_kv != 0 || n_kv < 1 ||
        n_kv > (1 << 20) || n_q < 1 || n_q > 8192 || n_threads < 1 || n_threads > 512 || reps < 1) {
        raise_value("attention probe: shape out of range");
    }
    const size_t f16 = sizeof(ggml_fp16_t);
    const size_t bytes = size_t(head_dim) * n_head * n_q * 4 * 2 + size_t(head_dim) * n_head_kv * n_kv * f16 * 2 +
                         size_t(n_kv) * n_q * 4 * 2 + size_t(n_kv) * n_q * n_head * 4 * 2 + (64u << 20);
    ggml_init_params params = {bytes, nullptr, false};
    std::unique_ptr<ggml_context, GgmlContextFree> ctx(ggml_init(params));
    if (!ctx) raise_runtime("attention probe: out of memory");
    ggml_context * c = ctx.get();

    // The layouts of llama.cpp's graph: q as [d, n_head, n_q] permuted to [d, n_q, n_head]; the
    // K cache as [d, n_head_kv, n_kv] permuted; V as rows of d (flash) or transposed rows of n_kv.
    ggml_tensor * q = ggml_new_tensor_3d(c, GGML_TYPE_F32, head_dim, n_head, n_q);
    ggml_tensor * k = ggml_new_tensor_3d(c, GGML_TYPE_F16, head_dim, n_head_kv, n_kv);
    ggml_tensor * v = flash ? ggml_new_tensor_3d(c, GGML_TYPE_F16, head_dim, n_head_kv, n_kv)
                            : ggml_new_tensor_3d(c, GGML_TYPE_F16, n_kv, head_dim, n_head_kv);
    ggml_tensor * mask = ggml_new_tensor_2d(c, flash ? GGML_TYPE_F16 : GGML_TYPE_F32, n_kv, n_q);
    fill(q, 2.0f);
    fill(k, 2.0f);
    fill(v, 2.0f);
    fill(mask, 0.0f);
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));

    ggml_tensor * qp = ggml_permute(c, q, 0, 2, 1, 3);
    ggml_tensor * kp = ggml_permute(c, k, 0, 2, 1, 3);
    ggml_tensor * out = nullptr;
    if (flash) {
        ggml_tensor * vp = ggml_permute(c, v, 0, 2, 1, 3);
        out = ggml_flash_attn_ext(c, qp, kp, vp, mask, scale, 0.0f, 0.0f);
        ggml_prec_set_acc(out, GGML_PREC_F32);
    } else {
        ggml_tensor * kq = ggml_mul_mat(c, kp, qp);
        ggml_prec_set_acc(kq, GGML_PREC_F32);
        kq = ggml_soft_max_ext(c, kq, mask, scale, 0.0f);
        out = ggml_mul_mat(c, v, kq);
        out = ggml_cont(c, ggml_permute(c, out, 0, 2, 1, 3));
    }
    ggml_cgraph * graph = ggml_new_graph(c);
    ggml_build_forward_expand(graph, out);

    ggml_threadpool_params tp_params = ggml_threadpool_params_default(n_threads);
    std::unique_ptr<ggml_threadpool, ThreadpoolFree> pool(ggml_threadpool_new(&tp_params));
    if (!pool) raise_runtime("attention probe: no thread pool");
    ggml_cplan plan = ggml_graph_plan(graph, n_threads, pool.get());
    std::vector<uint8_t> work(plan.work_size);
    plan.work_data = work.data();

    std::vector<double> times;
    {
        py::gil_scoped_release release;
        ggml_graph_compute(graph, &plan);  // warm-up: caches, thread start
        for (int r = 0; r < reps; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            ggml_graph_compute(graph, &plan);
            times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

}  // namespace

void bind_attention(py::module_ & m) {
    m.def("attention_seconds", &attention_seconds, py::arg("head_dim"), py::arg("n_head"), py::arg("n_head_kv"),
          py::arg("n_kv"), py::arg("n_q"), py::arg("n_threads"), py::arg("flash"), py::arg("reps") = 5,
          "Median seconds of one layer's attention on the CPU, with flash attention or without, for "
          "n_q tokens of n_head heads (head_dim wide) against n_kv cached positions of n_head_kv heads");
}

}  // namespace pyollama
