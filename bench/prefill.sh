#!/usr/bin/env bash
# Prompt processing (issue 9): a P-token prompt on the B30 model (Qwen3-30B-A3B shape, Q4_K, ~17 GB;
# bench/b30.sh makes it) by sluice (layer-major chunks of --batch) and by llama.cpp v0.5.0
# (bench/peer/llama_peer: the whole prompt in one llama_decode, ubatch 512), same file, same run:
#   - in the page cache (the whole file in RAM), interleaved, R rounds; llama.cpp with and without
#     weight repacking (repacking is its fast prompt path; it copies the weights, so not under a cap);
#   - under ../shared/tools/memlimit CAP (RAM + page cache): sluice --io direct, llama.cpp mmap.
# sluice also reports the bytes it read per prompt against the experts its chunks touched.
#
# usage: bench/prefill.sh [MODEL.gguf]
# env:   P=512 BATCH=512 THREADS=2 R=3 CAP=4G MEMORY=3600M SKIP_RAM=1 SKIP_CAP=1 SKIP_LLAMA=1
# Writes bench/results/prefill-<host>-<date>.json and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
P=${P:-512}; B=${BATCH:-512}; T=${THREADS:-2}; R=${R:-3}; CAP=${CAP:-4G}; MEMORY=${MEMORY:-3600M}
MEMLIMIT=${MEMLIMIT:-../shared/tools/memlimit}
model=${1:-build/models/b30-q4k.gguf}
[ -f "$model" ] || { echo "prefill: $model is missing (bash bench/b30.sh makes it)" >&2; exit 1; }
[ -x build/sluice ] || bash scripts/build.sh
[ "${SKIP_LLAMA:-0}" = 1 ] || [ -x build/bench/llama_peer ] || bash bench/peer/build.sh

out=$(mktemp -d /tmp/prefill.XXXXXX)
trap 'rm -rf "$out"' EXIT
step() { echo "prefill: $* (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2; }
sl() {  # $1 tag, rest: extra flags
  local tag=$1; shift
  step "sluice $tag"
  build/sluice bench "$model" -t "$T" -p "$P" -n 1 -r 1 --batch "$B" --json "$@" > "$out/$tag.json" 2> "$out/$tag.err" ||
    { cat "$out/$tag.err" >&2; exit 1; }
}
ll() {  # $1 tag, rest: extra flags
  local tag=$1; shift
  step "llama.cpp $tag"
  build/bench/llama_peer -m "$model" -t "$T" -p "$P" -n 1 -r 1 --json "$@" > "$out/$tag.json" 2> "$out/$tag.err" ||
    { cat "$out/$tag.err" >&2; exit 1; }
}

if [ "${SKIP_RAM:-0}" != 1 ]; then
  avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
  size_kb=$(( $(stat -c %s "$model") / 1024 ))
  if [ "$avail_kb" -gt $(( size_kb + 2 * 1024 * 1024 )) ]; then
    step "reading the model into the page cache"
    cat "$model" > /dev/null
    for r in $(seq 1 "$R"); do
      sl "ram-sluice-$r" --io mmap
      if [ "${SKIP_LLAMA:-0}" != 1 ]; then
        ll "ram-llama-$r"
        ll "ram-llama-norepack-$r" --no-repack
      fi
    done
  else
    echo "prefill: skipping the in-RAM runs (MemAvailable $((avail_kb / 1024)) MiB, model $((size_kb / 1024)) MiB)" >&2
  fi
fi

if [ "${SKIP_CAP:-0}" != 1 ]; then
  MEMLIMIT_CMD="$MEMLIMIT $CAP"
  step "sluice under memlimit $CAP"
  $MEMLIMIT_CMD build/sluice bench "$model" -t "$T" -p "$P" -n 1 -r 1 --batch "$B" --io direct --memory "$MEMORY" --json \
    > "$out/cap-sluice.json" 2> "$out/cap-sluice.err" || { cat "$out/cap-sluice.err" >&2; exit 1; }
  if [ "${SKIP_LLAMA:-0}" != 1 ]; then
    step "llama.cpp under memlimit $CAP (mmap, repack off)"
    $MEMLIMIT_CMD build/bench/llama_peer -m "$model" -t "$T" -p "$P" -n 1 -r 1 --no-repack --json \
      > "$out/cap-llama.json" 2> "$out/cap-llama.err" || { cat "$out/cap-llama.err" >&2; exit 1; }
  fi
fi

mkdir -p bench/results
res=bench/results/prefill-$(hostname)-$(date +%Y%m%d-%H%M%S).json
python3 - "$out" "$res" "$model" "$P" "$B" "$T" "$CAP" <<'EOF'
import glob, json, os, statistics, sys
out, res, model, P, B, T, cap = sys.argv[1:]
runs = {os.path.basename(f)[:-5]: json.load(open(f)) for f in glob.glob(out + "/*.json")}
def group(prefix):
    return [v["prompt_tok_s"] for k, v in sorted(runs.items()) if k.rsplit("-", 1)[0] == prefix]
table = {}
for name in ["ram-sluice", "ram-llama", "ram-llama-norepack"]:
    v = group(name)
    if v: table[name] = {"runs": v, "median": statistics.median(v)}
for name in ["cap-sluice", "cap-llama"]:
    if name in runs: table[name] = {"runs": [runs[name]["prompt_tok_s"]], "median": runs[name]["prompt_tok_s"]}
summary = {"model": model, "prompt_tokens": int(P), "batch": int(B), "threads": int(T), "cap": cap,
           "prompt_tok_s": table, "raw": runs}
def ratio(a, b):
    return table[a]["median"] / table[b]["median"] if a in table and b in table else None
summary["ratio_ram_vs_llama"] = ratio("ram-sluice", "ram-llama")
summary["ratio_ram_vs_llama_norepack"] = ratio("ram-sluice", "ram-llama-norepack")
summary["ratio_cap_vs_llama"] = ratio("cap-sluice", "cap-llama")
if "cap-sluice" in runs:
    c = runs["cap-sluice"]
    summary["cap_sluice_bytes_read"] = c["prompt_bytes_read"]
    summary["cap_sluice_touched_expert_bytes"] = c["prompt_touched_expert_bytes"]
json.dump(summary, open(res, "w"), indent=1)
print(f"prompt {P} tokens, --batch {B}, {T} threads, {model}")
for k, v in table.items():
    print(f"  {k:22s} median {v['median']:8.3f} tok/s  runs {' '.join(f'{x:.3f}' for x in v['runs'])}")
for k in ["ratio_ram_vs_llama", "ratio_ram_vs_llama_norepack", "ratio_cap_vs_llama"]:
    if summary[k] is not None: print(f"  {k}: {summary[k]:.2f}x")
if "cap-sluice" in runs:
    c = runs["cap-sluice"]
    print(f"  under the cap sluice read {c['prompt_bytes_read']/1e9:.2f} GB (kernel {c['prompt_os_read_bytes']/1e9:.2f} GB); "
          f"its chunks touched {c['prompt_touched_expert_bytes']/1e9:.2f} GB of experts")
print(f"  -> {res}")
EOF
