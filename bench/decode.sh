#!/usr/bin/env bash
# Decode tok/s of sluice vs llama.cpp v0.5.0 on the same in-RAM model, same threads, same run.
# usage: bench/decode.sh [MODEL.gguf]   (default: a ~1.7 GB generated qwen3moe Q4_K model)
# Writes bench/results/decode-<host>-<date>.json and prints the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${THREADS:-2}; P=${P:-32}; N=${N:-32}; R=${R:-5}
[ -x build/sluice ] || bash scripts/build.sh
[ -x build/bench/llama_peer ] || bash bench/peer/build.sh
model=${1:-build/models/bench-1.7g-q4k.gguf}
if [ ! -f "$model" ]; then
  mkdir -p "$(dirname "$model")"
  # Qwen3-30B-A3B's layer shape (embd 2048, 32/4 heads of 128, 128 experts of 768, top-8), 5 layers.
  build/sluice gen-model --arch qwen3moe --layers 5 --embd 2048 --heads 32 --kv-heads 4 --head-dim 128 \
    --experts 128 --used 8 --ff-exp 768 --vocab 32000 --type q4_K --out "$model"
fi
cat "$model" > /dev/null   # both engines start from the page cache
mkdir -p bench/results
out=bench/results/decode-$(hostname)-$(date +%Y%m%d-%H%M%S).json
s=$(build/bench/bench_decode -m "$model" -t "$T" -p "$P" -n "$N" -r "$R" --json)
l=$(build/bench/llama_peer -m "$model" -t "$T" -p "$P" -n "$N" -r "$R" --no-repack --json 2>/dev/null)
printf '{"sluice":%s,\n "llama_cpp":%s}\n' "$s" "$l" > "$out"
python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s, l = d["sluice"]["decode_tok_s_median"], d["llama_cpp"]["decode_tok_s_median"]
print(f"decode tok/s median: sluice {s:.2f}  llama.cpp {l:.2f}  ratio {s/l:.3f}   ({sys.argv[1]})")
PY
