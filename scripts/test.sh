#!/usr/bin/env bash
# Builds and runs every test; ctest prints the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
