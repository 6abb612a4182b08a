// Float32 vectors as JSON text, number by number as Go's encoding/json writes a []float32
// (Ollama's /api/embed and /v1/embeddings answers): the shortest decimal that reads back as the
// same float32, in 'f' notation unless |x| < 1e-6 or |x| >= 1e21, then 'e' (1e-07 becomes
// 1e-7). It is the one hot loop of an embedding reply that is not llama.cpp's: 256 vectors of
// 384 floats take Python's json about 40 ms, with float64 digits (0.012345679104328156 where
// Go writes 0.012345679); this takes a few.
#include "errors.hpp"

#include <pybind11/numpy.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <string>

namespace pyollama {

namespace {

// strconv.AppendFloat(x, 'f' or 'e', -1, 32) and encoding/json's exponent clean-up. The digits
// come from std::to_chars' shortest round-trip form (Ryu: the shortest digits, the closest of
// them on a tie, as Go's); the layout is Go's, since to_chars' own 'fixed' prints the exact
// value of a large float (100000002004087734272 for 1e20f) where Go prints 100000000000000000000.
void append_go_float32(std::string & out, float x) {
    if (std::isnan(x) || std::isinf(x)) {
        raise_value(std::string("json: unsupported value: ") + (std::isnan(x) ? "NaN" : x > 0 ? "+Inf" : "-Inf"));
    }
    if (std::signbit(x)) {
        out.push_back('-');
        x = -x;
    }
    if (x == 0.0f) {
        out.push_back('0');
        return;
    }
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
    // buf: D[.DDDD]e(+|-)XX
    const char * e = buf;
    while (*e != 'e') ++e;
    char digits[16];
    int n_digits = 0;
    for (const char * p = buf; p < e; ++p) {
        if (*p != '.') digits[n_digits++] = *p;
    }
    int exp10 = 0;
    std::from_chars(e + (e[1] == '+' ? 2 : 1), res.ptr, exp10);
    if (x < 1e-6f || x >= 1e21f) {
        out.push_back(digits[0]);
        if (n_digits > 1) {
            out.push_back('.');
            out.append(digits + 1, n_digits - 1);
        }
        out.push_back('e');
        out.push_back(exp10 < 0 ? '-' : '+');
        // Go writes at least two exponent digits (e+21, e-07); json then drops the 0 of e-0X.
        // Here |exp10| <= 45 and a positive one is >= 21.
        const int a = std::abs(exp10);
        if (a >= 10) out.push_back(static_cast<char>('0' + a / 10));
        out.push_back(static_cast<char>('0' + a % 10));
        return;
    }
    const int dp = exp10 + 1;  // decimal point after `dp` digits: 0.DIGITS x 10^dp
    if (dp <= 0) {
        out.append("0.");
        out.append(static_cast<size_t>(-dp), '0');
        out.append(digits, n_digits);
    } else if (dp >= n_digits) {
        out.append(digits, n_digits);
        out.append(static_cast<size_t>(dp - n_digits), '0');
    } else {
        out.append(digits, dp);
        out.push_back('.');
        out.append(digits + dp, n_digits - dp);
    }
}

void append_row(std::string & out, const float * row, int64_t n, int64_t stride) {
    out.push_back('[');
    for (int64_t i = 0; i < n; ++i) {
        if (i) out.push_back(',');
        append_go_float32(out, row[i * stride]);
    }
    out.push_back(']');
}

}  // namespace

void bind_json(py::module_ & m) {
    // No llama.cpp call: a [n] or [rows, n] float32 array -> its JSON array text (nested for 2-D).
    m.def("float32_json", [](py::array_t<float, py::array::forcecast> a) {
        if (a.ndim() != 1 && a.ndim() != 2) raise_value("float32_json takes a 1-D or 2-D array");
        const int64_t stride_row = a.ndim() == 2 ? a.strides(0) / static_cast<int64_t>(sizeof(float)) : 0;
        const int64_t stride_col = a.strides(a.ndim() - 1) / static_cast<int64_t>(sizeof(float));
        const int64_t n_col = a.shape(a.ndim() - 1);
        std::string out;
        {
            py::gil_scoped_release release;
            const float * base = a.data();
            if (a.ndim() == 1) {
                out.reserve(static_cast<size_t>(n_col) * 12 + 2);
                append_row(out, base, n_col, stride_col);
            } else {
                const int64_t n_row = a.shape(0);
                out.reserve(static_cast<size_t>(n_row * (n_col * 12 + 3)) + 2);
                out.push_back('[');
                for (int64_t i = 0; i < n_row; ++i) {
                    if (i) out.push_back(',');
                    append_row(out, base + i * stride_row, n_col, stride_col);
                }
                out.push_back(']');
            }
        }
        return py::str(out);
    }, py::arg("values"),
       "JSON text of float32 values as Go's encoding/json writes []float32 (or [][]float32)");
}

}  // namespace pyollama
