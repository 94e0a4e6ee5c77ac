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
# Interleaved, so both see the same machine load; llama.cpp with its default weight repacking (its
# fastest in-RAM setting) and without.
s=$(build/bench/bench_decode -m "$model" -t "$T" -p "$P" -n "$N" -r "$R" --json)
l=$(build/bench/llama_peer -m "$model" -t "$T" -p "$P" -n "$N" -r "$R" --json 2>/dev/null)
s2=$(build/bench/bench_decode -m "$model" -t "$T" -p "$P" -n "$N" -r "$R" --json)
lnr=$(build/bench/llama_peer -m "$model" -t "$T" -p "$P" -n "$N" -r "$R" --no-repack --json 2>/dev/null)
printf '{"sluice":%s,\n "llama_cpp":%s,\n "sluice_2":%s,\n "llama_cpp_no_repack":%s}\n' "$s" "$l" "$s2" "$lnr" > "$out"
python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
med = lambda k: d[k]["decode_tok_s_median"]
s = sorted(d["sluice"]["decode_tok_s_runs"] + d["sluice_2"]["decode_tok_s_runs"])
s = s[len(s) // 2]
l, lnr = med("llama_cpp"), med("llama_cpp_no_repack")
print(f"decode tok/s median: sluice {s:.2f}  llama.cpp {l:.2f} (no repack {lnr:.2f})  "
      f"ratio {s/l:.3f} ({s/lnr:.3f} vs no repack)   {sys.argv[1]}")
PY
