#!/usr/bin/env bash
# Builds build/bench/llama_peer: llama.cpp v0.5.0 as a benchmark peer. It links the prebuilt
# libraries of the npm package @node-llama-cpp/linux-x64 and compiles against the headers of the
# llama.cpp release bundled in node-llama-cpp. Nothing of llama.cpp is built or committed here.
# Needs g++ and npm (bash scripts/deps.sh). Safe to run twice.
#   VARIANT=vulkan bash bench/peer/build.sh   -> build/bench/llama_peer_vulkan, linked to the prebuilt
#   Vulkan build (@node-llama-cpp/linux-x64-vulkan: libggml-vulkan.so, needs libvulkan.so.1 at run time)
set -euo pipefail
cd "$(dirname "$0")/../.."

NLC_VERSION=3.22.1  # ships llama.cpp release v0.5.0 (node-llama-cpp/llama/binariesGithubRelease.json)
LLAMA_RELEASE=v0.5.0
VARIANT=${VARIANT:-cpu}
case "$VARIANT" in
  cpu) PKG=linux-x64; LIBTAG=""; OUT=build/bench/llama_peer ;;
  vulkan) PKG=linux-x64-vulkan; LIBTAG="vulkan."; OUT=build/bench/llama_peer_vulkan ;;
  *) echo "VARIANT must be cpu or vulkan" >&2; exit 2 ;;
esac
LIB_DIR=node_modules/@node-llama-cpp/$PKG/bins/$PKG
BUNDLE=node_modules/node-llama-cpp/llama/gitRelease.bundle
SRC=build/llama-src

if [ ! -f "$LIB_DIR/libllama.$LIBTAG$LLAMA_RELEASE.so" ] || [ ! -f "$BUNDLE" ]; then
  echo "installing @node-llama-cpp/$PKG@$NLC_VERSION and node-llama-cpp@$NLC_VERSION into node_modules/"
  # --ignore-scripts: only the files are needed, not node-llama-cpp's postinstall step.
  # With the tests' packages (scripts/npm-packages): npm removes what an install does not name.
  npm install --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
    $(cat scripts/npm-packages) "@node-llama-cpp/$PKG@$NLC_VERSION" "node-llama-cpp@$NLC_VERSION" >/dev/null
fi
release=$(sed -n 's/.*"release": *"\([^"]*\)".*/\1/p' node_modules/node-llama-cpp/llama/binariesGithubRelease.json)
if [ "$release" != "$LLAMA_RELEASE" ]; then
  echo "node_modules/node-llama-cpp ships llama.cpp $release; expected $LLAMA_RELEASE" >&2
  exit 1
fi
for lib in "libllama.$LIBTAG$LLAMA_RELEASE.so" "libggml.$LIBTAG$LLAMA_RELEASE.so" libggml-base.so; do
  [ -f "$LIB_DIR/$lib" ] || { echo "missing $LIB_DIR/$lib" >&2; exit 1; }
done

if [ ! -f "$SRC/include/llama.h" ]; then
  rm -rf "$SRC"
  mkdir -p build
  git -c advice.detachedHead=false clone -q "$BUNDLE" "$SRC"
fi

mkdir -p "$(dirname "$OUT")"
# The rpath finds the libraries relative to the binary (the repository moves between machines),
# with the absolute path as a fallback for binaries copied elsewhere.
g++ -std=c++20 -O2 -g -Wall -Wextra \
  -I"$SRC/include" -I"$SRC/ggml/include" -I. \
  bench/peer/llama_peer.cpp engine/sampler.cpp -o "$OUT" \
  -L"$LIB_DIR" "-l:libllama.$LIBTAG$LLAMA_RELEASE.so" "-l:libggml.$LIBTAG$LLAMA_RELEASE.so" -l:libggml-base.so -ldl \
  "-Wl,-rpath,\$ORIGIN/../../$LIB_DIR:$(pwd)/$LIB_DIR"
echo "built $OUT"
