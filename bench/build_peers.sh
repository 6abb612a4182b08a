#!/usr/bin/env bash
# Builds the benchmark peers from the same pinned llama.cpp tree pyollama builds:
# llama-bench, llama-server, llama-batched-bench and llama-quantize, into build-peers/ (ccache shared).
set -euo pipefail
cd "$(dirname "$0")/.."
python vendor/fetch_llama_cpp.py
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake -S vendor/llama.cpp -B build-peers -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=ON
cmake --build build-peers --target llama-server llama-bench llama-batched-bench llama-quantize -j"$(nproc)"
