#!/usr/bin/env bash
# Runs on the lent GPU machine (its CPU is quiet, unlike the shared dev box). Prepare .dev/bench/ with
# stripped build-noui/sluice, build-noui/bench/bench_decode, build/bench/llama_peer and the npm
# package's libllama/libggml*.so in .dev/bench/lib, then run it with carry [".dev/bench"].
# Decode bench on the device machine's CPU (quiet, 2 threads), sluice vs llama.cpp v0.5.0, interleaved.
set -u
cd "$(dirname "$0")"
export LD_LIBRARY_PATH=$PWD/lib
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-200
M=/tmp/bench-1.7g-q4k.gguf
./sluice gen-model --arch qwen3moe --layers 5 --embd 2048 --heads 32 --kv-heads 4 --head-dim 128 \
  --experts 128 --used 8 --ff-exp 768 --vocab 32000 --type q4_K --out $M 2>&1 | tail -1
cat $M > /dev/null
for rep in 1 2 3; do
  for isa in avx512 avx2; do
    SLUICE_ISA=$isa taskset -c 0,1 ./bench_decode -m $M -t 2 -p 32 -n 32 -r 5 --json > $OUT/s_${isa}_$rep.json
    echo "sluice $isa: $(python3 -c "import json; d=json.load(open('$OUT/s_${isa}_$rep.json')); print(d['decode_tok_s_median'], d['isa'])")"
  done
  taskset -c 0,1 ./llama_peer -m $M -t 2 -p 32 -n 32 -r 5 --json > $OUT/l_$rep.json 2>/dev/null
  echo "llama: $(python3 -c "import json; d=json.load(open('$OUT/l_$rep.json')); print(d['decode_tok_s_median'], d.get('system_info','')[:80])")"
  taskset -c 0,1 ./llama_peer -m $M -t 2 -p 32 -n 32 -r 5 --no-repack --json > $OUT/lnr_$rep.json 2>/dev/null
  echo "llama no-repack: $(python3 -c "import json; d=json.load(open('$OUT/lnr_$rep.json')); print(d['decode_tok_s_median'])")"
done
cd $OUT && tar cf results.tar *.json && rm -f *.json
