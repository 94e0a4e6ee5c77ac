#!/usr/bin/env bash
# Third reference: llama.cpp v0.5.0's logits on the converter-written fixtures, compared with HF's and
# sluice's (max over positions of max|a-b| / max|ref| per row). Needs bench/peer/build.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
for name in moe_a moe_b moe_c dense_a; do
  fx=tests/fixtures/qwen3/$name
  toks=$(tr ' ' ',' < $fx.tokens.txt | tr -d '\n')
  build/bench/llama_peer -m $fx.gguf --tokens "$toks" --logits $tmp/$name.llama.f32 --kv-type f32 --no-fa >/dev/null 2>&1
  build/sluice logits $fx.gguf --tokens "$toks" --out $tmp/$name.sluice.f32 2>/dev/null
  python3 - $fx.logits.f32 $tmp/$name.llama.f32 $tmp/$name.sluice.f32 $name <<'PY'
import struct, sys
def load(p):
    b = open(p, 'rb').read(); return struct.unpack('<%df' % (len(b) // 4), b)
hf, ll, sl = (load(p) for p in sys.argv[1:4])
n_vocab = 400
def rel(a, ref):
    worst = 0.0
    for r in range(len(ref) // n_vocab):
        row = slice(r * n_vocab, (r + 1) * n_vocab)
        err = max(abs(x - y) for x, y in zip(a[row], ref[row])); mx = max(abs(y) for y in ref[row])
        worst = max(worst, err / mx)
    return worst
print(f"{sys.argv[4]:8s} llama.cpp vs HF {rel(ll, hf):.2e}   sluice vs HF {rel(sl, hf):.2e}   sluice vs llama.cpp {rel(sl, ll):.2e}")
PY
done
rm -rf "$tmp"
