// ggml's RPC backend: serve this process's backend to others, and use other
// processes' backends as devices. Compiled in when GGML_RPC is on; otherwise the
// module only says has_rpc = False.
//
// The RPC client aborts the process when a server cannot be reached or dies
// mid-call (GGML_ABORT in ggml-rpc.cpp), so pyollama.llama.rpc checks each
// endpoint with a HELLO handshake of its own before handing it to ggml.
#include "errors.hpp"
#include "handles.hpp"

#include <pybind11/stl.h>

#include "ggml-backend.h"
#include "ggml-rpc.h"

#include <string>
#include <vector>

namespace pyollama {

#ifdef PYOLLAMA_HAVE_RPC
namespace {

ggml_backend_reg_t rpc_reg() {
    // ggml_backend_reg_by_name: nullptr when the RPC backend is neither linked nor loaded.
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("RPC");
    if (!reg) {
        raise_runtime("the RPC backend is not available in this build (rebuild with -DGGML_RPC=on)");
    }
    return reg;
}

// "host:port" with a port in range; ggml aborts on an endpoint it cannot parse.
void check_endpoint(const std::string & endpoint) {
    const size_t colon = endpoint.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == endpoint.size()) {
        raise_value("RPC endpoint must be host:port, got '" + endpoint + "'");
    }
    if (endpoint.find(':') != colon) {
        raise_value("RPC endpoint must be host:port with an IPv4 address or host name, got '" + endpoint + "'");
    }
    const std::string port = endpoint.substr(colon + 1);
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
        std::stoi(port) > 65535) {
        raise_value("RPC endpoint port must be 1-65535, got '" + port + "'");
    }
}

std::vector<ggml_backend_dev_t> pick_devices(const std::vector<std::string> & names) {
    std::vector<ggml_backend_dev_t> devices;
    for (const auto & name : names) {
        // ggml_backend_dev_by_name: nullptr for an unknown name.
        ggml_backend_dev_t dev = ggml_backend_dev_by_name(name.c_str());
        if (!dev) {
            std::string known;
            for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
                known += (known.empty() ? "" : ", ") + std::string(ggml_backend_dev_name(ggml_backend_dev_get(i)));
            }
            raise_value("unknown device '" + name + "' (available: " + known + ")");
        }
        if (ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev)) == std::string("RPC")) {
            raise_value("device '" + name + "' is itself an RPC device; serve a local device");
        }
        devices.push_back(dev);
    }
    if (devices.empty()) {
        // Same default as llama.cpp's rpc-server: every accelerator, else the CPU.
        for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
            ggml_backend_dev_t dev = ggml_backend_dev_get(i);
            const auto type = ggml_backend_dev_type(dev);
            const bool is_rpc = ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev)) == std::string("RPC");
            if (!is_rpc && type != GGML_BACKEND_DEVICE_TYPE_CPU && type != GGML_BACKEND_DEVICE_TYPE_ACCEL) {
                devices.push_back(dev);
            }
        }
    }
    if (devices.empty()) {
        ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
        if (cpu) {
            devices.push_back(cpu);
        }
    }
    if (devices.empty()) {
        raise_runtime("no device to serve over RPC");
    }
    return devices;
}

}  // namespace
#endif  // PYOLLAMA_HAVE_RPC

void bind_rpc(py::module_ & m) {
#ifdef PYOLLAMA_HAVE_RPC
    m.attr("has_rpc") = true;
    m.attr("rpc_proto_version") =
        py::make_tuple(RPC_PROTO_MAJOR_VERSION, RPC_PROTO_MINOR_VERSION, RPC_PROTO_PATCH_VERSION);

    m.def("rpc_check_endpoint", &check_endpoint, py::arg("endpoint"),
          "raise ValueError unless endpoint is host:port (what ggml's endpoint parser accepts)");

    // ggml_backend_rpc_start_server: blocks serving one client at a time; returns only when it
    // cannot parse the endpoint, create the backends, bind, or accept.
    m.def(
        "rpc_start_server",
        [](const std::string & endpoint, const std::vector<std::string> & device_names, size_t n_threads,
           const std::string & cache_dir) {
            check_endpoint(endpoint);
            if (n_threads == 0) {
                raise_value("n_threads must be at least 1");
            }
            ensure_backend("");
            ggml_backend_reg_t reg = rpc_reg();
            using start_server_t = decltype(ggml_backend_rpc_start_server) *;
            auto start_server =
                reinterpret_cast<start_server_t>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_start_server"));
            if (!start_server) {
                raise_runtime("the RPC backend does not export ggml_backend_rpc_start_server");
            }
            std::vector<ggml_backend_dev_t> devices = pick_devices(device_names);
            {
                py::gil_scoped_release release;
                start_server(endpoint.c_str(), cache_dir.empty() ? nullptr : cache_dir.c_str(), n_threads,
                             devices.size(), devices.data());
            }
            raise_runtime("RPC server on " + endpoint + " stopped (address in use, or the device failed to start)");
        },
        py::arg("endpoint"), py::arg("devices") = std::vector<std::string>(), py::arg("n_threads") = 1,
        py::arg("cache_dir") = std::string(),
        "ggml_backend_rpc_start_server (GIL released; blocks until the server fails)");

    // ggml_backend_rpc_add_server + ggml_backend_register: connects (aborting the process when the
    // server is unreachable, so callers check first), registers its devices, returns their names.
    // Adding the same endpoint twice returns the same registry and registers nothing new.
    m.def(
        "rpc_add_server",
        [](const std::string & endpoint) {
            check_endpoint(endpoint);
            ensure_backend("");
            ggml_backend_reg_t reg = rpc_reg();
            using add_server_t = decltype(ggml_backend_rpc_add_server) *;
            auto add_server =
                reinterpret_cast<add_server_t>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_add_server"));
            if (!add_server) {
                raise_runtime("the RPC backend does not export ggml_backend_rpc_add_server");
            }
            ggml_backend_reg_t server_reg = nullptr;
            {
                py::gil_scoped_release release;
                server_reg = add_server(endpoint.c_str());
            }
            if (!server_reg) {
                raise_runtime("RPC server " + endpoint + " reports no devices");
            }
            bool registered = false;
            for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
                registered = registered || ggml_backend_reg_get(i) == server_reg;
            }
            if (!registered) {
                ggml_backend_register(server_reg);
            }
            std::vector<std::string> names;
            for (size_t i = 0; i < ggml_backend_reg_dev_count(server_reg); ++i) {
                names.emplace_back(ggml_backend_dev_name(ggml_backend_reg_dev_get(server_reg, i)));
            }
            return names;
        },
        py::arg("endpoint"), "ggml_backend_rpc_add_server + ggml_backend_register; names of the devices it adds");

    // ggml_backend_dev_get + ggml_backend_dev_description: the registered RPC devices and their
    // endpoints, read locally (asking a device for its memory would go over the network).
    m.def("rpc_registered", [] {
        std::vector<std::pair<std::string, std::string>> out;
        for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
            ggml_backend_dev_t dev = ggml_backend_dev_get(i);
            if (ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev)) == std::string("RPC")) {
                out.emplace_back(ggml_backend_dev_name(dev), ggml_backend_dev_description(dev));
            }
        }
        return out;
    }, "(device name, endpoint) of every registered RPC device");
#else
    m.attr("has_rpc") = false;
#endif
}

}  // namespace pyollama
