#!/usr/bin/env bash
# Benchmark B30 (issue 3): a Qwen3-30B-A3B-shaped model (48 layers, hidden 2048, 32/4 heads of 128,
# 128 experts of 768, top-8, Q4_K, ~17 GB) decoded by sluice and by llama.cpp v0.5.0 (bench/peer)
#   - under a memory cap (../shared/tools/memlimit, RAM + page cache): the model streams from disk;
#   - in the page cache (the whole file in RAM), if the machine has the room;
# with the disk measured by fio (io_uring, O_DIRECT, random reads of one expert slab) before and after.
#
# usage: bench/b30.sh [MODEL.gguf]
# env:   CAP=4G  MEMORY=3600M (sluice --memory under the cap)  P=8 N=32 R=3 THREADS=2
#        SKIP_RAM=1 SKIP_LLAMA=1 LLAMA_R=1 (llama.cpp repetitions under the cap: ~minutes each)
# Writes bench/results/b30-<host>-<date>.json and prints the table (bench/b30_table.py).
set -euo pipefail
cd "$(dirname "$0")/.."
CAP=${CAP:-4G}; MEMORY=${MEMORY:-3600M}; P=${P:-8}; N=${N:-32}; R=${R:-3}; T=${THREADS:-2}; LLAMA_R=${LLAMA_R:-1}
MEMLIMIT=${MEMLIMIT:-../shared/tools/memlimit}
model=${1:-build/models/b30-q4k.gguf}

[ -x build/sluice ] || bash scripts/build.sh
[ "${SKIP_LLAMA:-0}" = 1 ] || [ -x build/bench/llama_peer ] || bash bench/peer/build.sh
command -v fio >/dev/null || { echo "b30: fio is missing (bash scripts/deps.sh)" >&2; exit 1; }
if [ ! -f "$model" ]; then
  mkdir -p "$(dirname "$model")"
  avail=$(df --output=avail -B1 "$(dirname "$model")" | tail -1)
  [ "$avail" -gt $((20 * 1024 * 1024 * 1024)) ] || { echo "b30: need 20 GB free for $model" >&2; exit 1; }
  # gen-model's default scales follow facts.md's honest recipe (no routing collapse).
  build/sluice gen-model --arch qwen3moe --layers 48 --embd 2048 --heads 32 --kv-heads 4 --head-dim 128 \
    --experts 128 --used 8 --ff-exp 768 --vocab 151936 --type q4_K --out "$model"
fi

out=$(mktemp -d /tmp/b30.XXXXXX)
trap 'rm -rf "$out"' EXIT
dev=$(basename "$(df --output=source "$model" | tail -1)")
ra=$(cat "/sys/class/block/$dev/queue/read_ahead_kb" 2>/dev/null || cat "/sys/class/block/$dev/../queue/read_ahead_kb" 2>/dev/null || echo null)
slab=$(build/sluice info --json "$model" | python3 -c 'import json,sys; print(json.load(sys.stdin)["expert_slab_bytes"] // 3)')
echo "b30: $model, slab read $slab bytes, read_ahead_kb $ra, cap $CAP, sluice --memory $MEMORY" >&2

fio_run() {  # $1 tag, $2 queue depth: random slab-sized O_DIRECT reads of the model file
  fio --name=b30 --filename="$model" --rw=randread --bs="$slab" --direct=1 --ioengine=io_uring \
    --iodepth="$2" --runtime=10 --time_based --readonly --output-format=json > "$out/fio-$1-qd$2.json" 2>/dev/null
}
step() { echo "b30: $* (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2; }

# qd 32: what sluice keeps in flight (--io-depth 32); qd 8: one expert's reads at a time, roughly.
for qd in 8 32; do step "fio qd $qd"; fio_run before "$qd"; done

sl() {  # $1 tag, rest: extra sluice bench flags; run under the cap
  local tag=$1; shift
  step "sluice $tag (cap $CAP)"
  "$MEMLIMIT" "$CAP" build/sluice bench "$model" -t "$T" -p "$P" -n "$N" -r "$R" --memory "$MEMORY" --json "$@" \
    > "$out/cap-$tag.json" 2> "$out/cap-$tag.err" || { cat "$out/cap-$tag.err" >&2; exit 1; }
}
sl direct-lru --io direct --cache-policy lru
sl direct-lfu --io direct --cache-policy lfu
sl direct-lru-noprefetch --io direct --cache-policy lru --no-prefetch
sl direct-lfu-noprefetch --io direct --cache-policy lfu --no-prefetch
sl direct-uring --io direct --io-engine io_uring
sl page-cache --io page-cache
if [ "${SKIP_LLAMA:-0}" != 1 ]; then
  step "llama.cpp (cap $CAP, mmap, repack off)"
  "$MEMLIMIT" "$CAP" build/bench/llama_peer -m "$model" -t "$T" -p "$P" -n "$N" -r "$LLAMA_R" --no-repack --json \
    > "$out/cap-llama.json" 2> "$out/cap-llama.err" || { cat "$out/cap-llama.err" >&2; exit 1; }
fi

for qd in 8 32; do step "fio qd $qd"; fio_run after "$qd"; done

# In the page cache: only when the file fits beside what the machine is using now.
avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
size_kb=$(( $(stat -c %s "$model") / 1024 ))
if [ "${SKIP_RAM:-0}" != 1 ] && [ "$avail_kb" -gt $(( size_kb + 3 * 1024 * 1024 )) ]; then
  step "reading the model into the page cache"
  cat "$model" > /dev/null
  step "sluice in RAM (auto)"
  build/sluice bench "$model" -t "$T" -p "$P" -n "$N" -r "$R" --json > "$out/ram-sluice.json" 2> "$out/ram-sluice.err"
  if [ "${SKIP_LLAMA:-0}" != 1 ]; then
    step "llama.cpp in RAM (mmap, repack off)"
    build/bench/llama_peer -m "$model" -t "$T" -p "$P" -n "$N" -r "$R" --no-repack --json \
      > "$out/ram-llama.json" 2> "$out/ram-llama.err"
  fi
else
  echo "b30: skipping the in-RAM runs (MemAvailable $((avail_kb / 1024)) MiB, model $((size_kb / 1024)) MiB)" >&2
fi

mkdir -p bench/results
res=bench/results/b30-$(hostname)-$(date +%Y%m%d-%H%M%S).json
python3 bench/b30_table.py "$out" "$res" --read-ahead-kb "$ra" --cap "$CAP" --memory "$MEMORY"
