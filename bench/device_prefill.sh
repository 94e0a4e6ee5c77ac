#!/usr/bin/env bash
# Prompt processing on the lent GPU machine's CPU (quiet, unlike the shared dev box), sluice vs
# llama.cpp v0.5.0, interleaved. Prepare .dev/bench/ as bench/device_decode.sh says (stripped
# build-noui/sluice, build/bench/llama_peer, the npm package's libllama/libggml*.so in lib/), then run
# it there with carry [".dev/bench"]: bash .dev/bench/device_prefill.sh (a copy of this file).
# Model: B30's layer shape (Qwen3-30B-A3B: hidden 2048, 32/4 heads of 128, 128 experts of 768, top-8,
# Q4_K) with 5 layers and a 32k vocabulary: per-layer work equals B30's, so the ratio carries over.
# env: P=512 BATCH=512 R=3
set -u
cd "$(dirname "$0")"
export LD_LIBRARY_PATH=$PWD/lib
P=${P:-512}; B=${BATCH:-512}; R=${R:-3}
lscpu | grep -E "Model name|^CPU\(s\)" | cut -c1-120
M=/tmp/bench-1.7g-q4k.gguf
[ -f $M ] || ./sluice gen-model --arch qwen3moe --layers 5 --embd 2048 --heads 32 --kv-heads 4 --head-dim 128 \
  --experts 128 --used 8 --ff-exp 768 --vocab 32000 --type q4_K --out $M 2>&1 | tail -1
cat $M > /dev/null
val() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])" "$@"; }
run_set() {  # $1 threads, $2 cpu list, $3 tag
  local t=$1 cpus=$2 tag=$3
  for rep in $(seq 1 "$R"); do
    for isa in avx512 avx2; do
      f=$OUT/s_${tag}_${isa}_$rep.json
      SLUICE_ISA=$isa taskset -c "$cpus" ./sluice bench $M -t "$t" -p "$P" -n 1 -r 1 --batch "$B" --io mmap --json > "$f" 2>/dev/null
      echo "$tag sluice $isa: $(val "$f" prompt_tok_s) tok/s"
    done
    f=$OUT/l_${tag}_$rep.json
    taskset -c "$cpus" ./llama_peer -m $M -t "$t" -p "$P" -n 1 -r 1 --json > "$f" 2>/dev/null
    echo "$tag llama: $(val "$f" prompt_tok_s) tok/s"
    f=$OUT/lnr_${tag}_$rep.json
    taskset -c "$cpus" ./llama_peer -m $M -t "$t" -p "$P" -n 1 -r 1 --no-repack --json > "$f" 2>/dev/null
    echo "$tag llama no-repack: $(val "$f" prompt_tok_s) tok/s"
  done
}
run_set 2 0,1 t2
[ "${SKIP_T16:-0}" = 1 ] || R=1 run_set 16 0-15 t16
cd $OUT && tar cf prefill.tar *.json && rm -f *.json
