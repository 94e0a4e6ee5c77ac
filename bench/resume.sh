#!/usr/bin/env bash
# Time to first token after resuming a 2,000-token conversation from its prefill snapshot vs
# re-processing it. usage: bench/resume.sh [MODEL.gguf]   (default: decode.sh's ~1.7 GB qwen3moe Q4_K)
# Env: THREADS (2), TOKENS (2000), NEW (32: the new user message), R (3 resume runs).
# Writes bench/results/resume-<host>-<date>.json and prints both times and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${THREADS:-2}; TOKENS=${TOKENS:-2000}; NEW=${NEW:-32}; R=${R:-3}
[ -x build/bench/bench_resume ] || { cmake -S . -B build -G Ninja >/dev/null && ninja -C build -j2 sluice bench_resume; }
model=${1:-build/models/bench-1.7g-q4k.gguf}
if [ ! -f "$model" ]; then
  mkdir -p "$(dirname "$model")"
  # Qwen3-30B-A3B's layer shape (embd 2048, 32/4 heads of 128, 128 experts of 768, top-8), 5 layers:
  # per token, a layer's compute and its KV bytes keep the proportions of the real model.
  build/sluice gen-model --arch qwen3moe --layers 5 --embd 2048 --heads 32 --kv-heads 4 --head-dim 128 \
    --experts 128 --used 8 --ff-exp 768 --vocab 32000 --type q4_K --out "$model"
fi
cat "$model" > /dev/null   # weights in the page cache for both runs
mkdir -p bench/results
out=bench/results/resume-$(hostname)-$(date +%Y%m%d-%H%M%S).json
build/bench/bench_resume -m "$model" -t "$T" --tokens "$TOKENS" --new "$NEW" -r "$R" --json > "$out"
python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{d['conversation_tokens']}-token conversation + {d['new_tokens']} new tokens: first token after "
      f"re-processing {d['reprocess_ttft_s']:.2f} s, after resuming {d['resume_ttft_s_median']:.3f} s "
      f"(restore {d['resume_restore_s_median']:.3f} s), {d['speedup']:.0f}x; snapshot "
      f"{d['snapshot_stored_bytes']/2**20:.1f} MiB stored   ({sys.argv[1]})")
PY
