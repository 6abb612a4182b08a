// Backend initialisation, logging and system information.
#include "errors.hpp"
#include "handles.hpp"

#include <pybind11/stl.h>

#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama.h"

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

namespace pyollama {

namespace {

std::once_flag g_backend_once;
std::atomic<int> g_log_level{GGML_LOG_LEVEL_WARN};
thread_local const LogTap * t_log_tap = nullptr;

// Called from any llama.cpp thread: writes to stderr without touching Python.
void log_to_stderr(ggml_log_level level, const char * text, void *) {
    if (t_log_tap != nullptr) {
        (*t_log_tap)(level, text);
    }
    if (level == GGML_LOG_LEVEL_CONT || level >= g_log_level.load()) {
        if (level == GGML_LOG_LEVEL_CONT && g_log_level.load() > GGML_LOG_LEVEL_INFO) {
            return;
        }
        fputs(text, stderr);
    }
}

}  // namespace

void set_thread_log_tap(const LogTap * tap) { t_log_tap = tap; }

// llama_backend_init + ggml_backend_load_all_from_path: idempotent, safe from any thread.
void ensure_backend(const std::string & backend_dir) {
    std::call_once(g_backend_once, [&] {
        llama_log_set(log_to_stderr, nullptr);
        if (!backend_dir.empty()) {
            ggml_backend_load_all_from_path(backend_dir.c_str());
        }
        llama_backend_init();
    });
}

void bind_system(py::module_ & m) {
    m.def("backend_init", &ensure_backend, py::arg("backend_dir") = std::string(),
          "llama_backend_init (+ ggml_backend_load_all_from_path); runs once per process");

    m.def("set_log_level", [](int level) { g_log_level.store(level); }, py::arg("level"),
          "ggml log level threshold: 1 debug, 2 info, 3 warn, 4 error, 5 none");

    // llama_print_system_info: static string owned by llama.cpp.
    m.def("print_system_info", [] { return std::string(llama_print_system_info()); });

    // llama_version-like identification of the pinned tree.
    m.def("llama_build_info", [] {
        py::dict d;
        d["supports_mmap"] = llama_supports_mmap();
        d["supports_mlock"] = llama_supports_mlock();
        d["supports_gpu_offload"] = llama_supports_gpu_offload();
        d["supports_rpc"] = llama_supports_rpc();
        d["max_devices"] = llama_max_devices();
        d["max_parallel_sequences"] = llama_max_parallel_sequences();
        return d;
    });

    // ggml_backend_reg_* / ggml_backend_dev_*: registered backends and devices.
    m.def("backends", [] {
        std::vector<std::string> names;
        for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
            names.emplace_back(ggml_backend_reg_name(ggml_backend_reg_get(i)));
        }
        return names;
    });
    m.def("devices", [] {
        py::list out;
        for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
            ggml_backend_dev_t dev = ggml_backend_dev_get(i);
            size_t free = 0, total = 0;
            ggml_backend_dev_memory(dev, &free, &total);
            const char * type = "cpu";
            switch (ggml_backend_dev_type(dev)) {
                case GGML_BACKEND_DEVICE_TYPE_CPU: type = "cpu"; break;
                case GGML_BACKEND_DEVICE_TYPE_GPU: type = "gpu"; break;
                case GGML_BACKEND_DEVICE_TYPE_IGPU: type = "igpu"; break;
                case GGML_BACKEND_DEVICE_TYPE_ACCEL: type = "accel"; break;
                default: type = "other"; break;
            }
            py::dict d;
            d["name"] = ggml_backend_dev_name(dev);
            d["description"] = ggml_backend_dev_description(dev);
            d["type"] = type;
            d["backend"] = ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev));
            d["memory_free"] = free;
            d["memory_total"] = total;
            out.append(d);
        }
        return out;
    });
    // ggml_backend_dev_get_extra_bufts (the CPU registry's proc address): the CPU's extra
    // buffer types, which a model loaded with repack=true uses (AMX, CPU_REPACK, ...); never fails.
    m.def("cpu_extra_buffer_types", [] {
        std::vector<std::string> names;
        ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
        if (cpu == nullptr) {
            return names;
        }
        auto get_extra = reinterpret_cast<ggml_backend_dev_get_extra_bufts_t>(ggml_backend_reg_get_proc_address(
            ggml_backend_dev_backend_reg(cpu), "ggml_backend_dev_get_extra_bufts"));
        if (get_extra == nullptr) {
            return names;
        }
        for (ggml_backend_buffer_type_t * buft = get_extra(cpu); buft != nullptr && *buft != nullptr; ++buft) {
            names.emplace_back(ggml_backend_buft_name(*buft));
        }
        return names;
    });
    m.def("time_us", [] { return llama_time_us(); }, "llama_time_us");
}

}  // namespace pyollama
