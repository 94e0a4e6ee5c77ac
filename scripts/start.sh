#!/usr/bin/env bash
# Sets up a fresh Debian machine and starts sluice: installs dependencies, builds, then runs MODEL.gguf
# (first argument) or, with none, a small generated qwen3moe model.
# (The ncurses chat replaces `run` here once it lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
model=${1:-}
if [ -z "$model" ]; then
  model=build/models/demo-random.gguf
  mkdir -p build/models
  [ -f "$model" ] || build/sluice gen-model --arch qwen3moe --layers 4 --embd 512 --experts 16 --used 4 \
      --ff-exp 256 --type q4_K --out "$model"
  echo "(no model given: running a random-weight model, so the text is noise; pass MODEL.gguf)" >&2
fi
build/sluice info "$model"
exec build/sluice run "$model" -p "${PROMPT:-Hello! What can you do?}" -n "${N:-64}"
