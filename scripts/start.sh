#!/usr/bin/env bash
# Sets up a fresh Debian machine and starts sluice's chat: installs dependencies, builds, then opens
# `sluice chat` on MODEL.gguf (first argument) or, with none, the last model used or the demo model
# that ships in models/demo.gguf.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
exec build/sluice chat "$@"
