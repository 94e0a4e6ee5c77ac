#!/usr/bin/env bash
# Decode on a GPU: sluice's Vulkan backend against llama.cpp's prebuilt Vulkan build
# (@node-llama-cpp/linux-x64-vulkan through bench/peer/llama_peer_vulkan) on the same GGUF files, in
# the same run, plus the bandwidth bounds they are measured against (bench_gpu).
#
#   bench/gpu_decode.sh BIN_DIR OUT_DIR
#     BIN_DIR: sluice, bench_decode, bench_gpu, llama_peer_vulkan (+ its libraries in BIN_DIR/lib)
#     env: MODELS_DIR (default /tmp/gpu-models), DEV (Vulkan device, default auto), T (CPU threads,
#          default: all), N/R/P (decode tokens, repetitions, prompt), TO (seconds per run, default 150),
#          CACHE_MIB (VRAM expert cache of the streaming runs, default 4096), SKIP_MOE=1, SKIP_DENSE=1,
#          SKIP_STREAM=1 (no runs with the experts in host RAM), SKIP_DS2=1, MIX=1, BW_TYPES (bench_gpu's matvec types,
#          default f16,q8_0,q4_k,q4_k_q8,q6_k; q4_k_q8: Q4_K's integer-dot variant), DENSE_TYPES (the 8B
#          dense shape written again in each of these types, e.g. "q4_0 q3_K q2_K q8_0", each run too)
#
# Models (written by `sluice gen-model`, random weights with the honest-routing scales, Q4_K):
#   moe    Qwen3-30B-A3B's shape: 48 layers, embd 2048, 32/4 heads of 128, 128 experts of 768, top-8,
#          vocab 151936 (~17 GB): fits in VRAM (decode tok/s vs the copy-bandwidth bound), and with a
#          VRAM expert cache of CACHE_MIB the experts stream from host RAM (vs the host->GPU bound),
#          or split between that cache (GPU) and the CPU.
#   dense  Qwen3-8B's shape (36 layers, embd 4096, ff 12288; ~4.7 GB): large matrices, where the
#          bandwidth bound is reachable.
#   dense32  Qwen3-32B's shape (64 layers, embd 5120, ff 25600; ~18.4 GB): larger matrices still
#          (SKIP_DENSE32=1 leaves it out).
#   dense72  a 72B-like qwen3 (80 layers, embd 8192, 64/8 heads, ff 29696, vocab 152064; ~41 GB on
#          disk and in VRAM), only with DENSE72=1: the largest matrices, where the bound is nearest.
#   mix    Mixtral-8x7B's shape as a qwen3moe (32 layers, embd 4096, 32/8 heads of 128, 8 experts of 14336,
#          top-2, vocab 32000; ~26 GB), only with MIX=1: an MoE whose experts are large matrices.
#   ds2    DeepSeek-V3's layout at DeepSeek-V2-Lite's size (deepseek2: MLA with a 512 latent + 64 rope
#          dims, 16 heads of 192/128, q bottleneck 768, 28 layers of which 1 dense (ff 10752), 64 experts
#          of 1536 top-6 + 2 shared, sigmoid routing; vocab 102400; ~9.6 GB): the Kimi / V3 path.
# Output: OUT_DIR/*.json (one per run) and OUT_DIR/summary.json + a table on stdout, ending with each
# model's ratio to llama.cpp and, in VRAM, the decode targets (>= 70% of the copy bound, >= 1.0x llama.cpp).
set -uo pipefail
B=$1
O=$2
M=${MODELS_DIR:-/tmp/gpu-models}
DEV=${DEV:-auto}
T=${T:-$(nproc)}
N=${N:-64}; R=${R:-3}; P=${P:-32}
CACHE_MIB=${CACHE_MIB:-4096}
TO=${TO:-150}  # seconds per run
mkdir -p "$O" "$M"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
log() { echo "== $(date +%T) $*" >&2; }
# run NAME TIMEOUT CMD...: stdout (one JSON line) to OUT_DIR/NAME.json, stderr to NAME.err
run() {
  local name=$1 limit=$2; shift 2
  log "$name: $*"
  timeout "$limit" "$@" >"$O/$name.json" 2>"$O/$name.err" || log "$name failed (rc $?): $(tail -3 "$O/$name.err")"
}

"$B/sluice" gpus --json >"$O/gpus.json" 2>&1
cat "$O/gpus.json" >&2
gpu_index=$DEV
if [ "$DEV" = auto ]; then
  gpu_index=$(python3 -c "import json,sys; d=[x for x in json.load(open('$O/gpus.json'))['devices'] if x['usable'] and not x['software']]; print(d[0]['index'] if d else 0)")
fi
run bw 240 "$B/bench_gpu" --device "$gpu_index" --mib 1024 --reps 20 --types "${BW_TYPES:-f16,q8_0,q4_k,q4_k_q8,q6_k}"

gen() {  # gen FILE ARGS...: writes a model unless present
  local f=$1; shift
  [ -f "$f" ] && return 0
  log "gen-model $f"
  "$B/sluice" gen-model "$@" --type q4_K --out "$f" >&2
}
[ "${SKIP_MOE:-0}" = 1 ] || gen "$M/moe.gguf" --arch qwen3moe --layers 48 --embd 2048 --heads 32 --kv-heads 4 --head-dim 128 \
  --experts 128 --used 8 --ff-exp 768 --vocab 151936
[ "${SKIP_DENSE:-0}" = 1 ] || gen "$M/dense.gguf" --arch qwen3 --layers 36 --embd 4096 --heads 32 --kv-heads 8 \
  --head-dim 128 --ff 12288 --vocab 151936

[ "${SKIP_DENSE32:-0}" = 1 ] || gen "$M/dense32.gguf" --arch qwen3 --layers 64 --embd 5120 --heads 64 --kv-heads 8 \
  --head-dim 128 --ff 25600 --vocab 151936

[ "${DENSE72:-0}" = 1 ] && gen "$M/dense72.gguf" --arch qwen3 --layers 80 --embd 8192 --heads 64 --kv-heads 8 \
  --head-dim 128 --ff 29696 --vocab 152064
[ "${MIX:-0}" = 1 ] && gen "$M/mix.gguf" --arch qwen3moe --layers 32 --embd 4096 --heads 32 --kv-heads 8 \
  --head-dim 128 --experts 8 --used 2 --ff-exp 14336 --vocab 32000
[ "${SKIP_DS2:-0}" = 1 ] || gen "$M/ds2.gguf" --arch deepseek2 --layers 28 --embd 2048 --heads 16 --head-dim 192 \
  --v-head-dim 128 --rope-dims 64 --q-lora 768 --kv-lora 512 --experts 64 --used 6 --ff-exp 1536 --shared 2 \
  --dense-lead 1 --ff 10752 --vocab 102400

typed=()
for t in ${DENSE_TYPES:-}; do
  [ -f "$M/dense_$t.gguf" ] || { log "gen-model $M/dense_$t.gguf"; "$B/sluice" gen-model --arch qwen3 --layers 36 --embd 4096 \
    --heads 32 --kv-heads 8 --head-dim 128 --ff 12288 --vocab 151936 --type "$t" --out "$M/dense_$t.gguf" >&2; }
  typed+=("dense_$t")
done

common=(-t "$T" -p "$P" -n "$N" -r "$R" --json)
for m in moe dense dense32 dense72 mix ds2 "${typed[@]}"; do
  [ -f "$M/$m.gguf" ] || continue
  cat "$M/$m.gguf" >/dev/null
  run "${m}_sluice" "$TO" "$B/bench_decode" -m "$M/$m.gguf" --gpu "$gpu_index" "${common[@]}"
  run "${m}_llama" "$TO" "$B/llama_peer_vulkan" -m "$M/$m.gguf" "${common[@]}"
done
# Experts in host RAM: sluice's VRAM expert cache fed through the staging buffer, sluice's CPU experts,
# split (the VRAM cache's experts on the GPU while the CPU computes the rest), auto (whichever of the
# three measures fastest), and llama.cpp's --cpu-moe (experts stay in host memory, computed by the CPU).
[ "${SKIP_STREAM:-0}" = 1 ] || [ "${SKIP_MOE:-0}" = 1 ] || {
run moe_stream_sluice_gpu "$TO" "$B/bench_decode" -m "$M/moe.gguf" --gpu "$gpu_index" --gpu-expert-cache "$CACHE_MIB" \
  --gpu-experts gpu -t "$T" -p "$P" -n 32 -r 2 --json
run moe_stream_sluice_cpu "$TO" "$B/bench_decode" -m "$M/moe.gguf" --gpu "$gpu_index" --gpu-expert-cache "$CACHE_MIB" \
  --gpu-experts cpu -t "$T" -p "$P" -n 32 -r 2 --json
run moe_stream_sluice_split "$TO" "$B/bench_decode" -m "$M/moe.gguf" --gpu "$gpu_index" --gpu-expert-cache "$CACHE_MIB" \
  --gpu-experts split -t "$T" -p "$P" -n 32 -r 2 --json
run moe_stream_sluice_auto "$TO" "$B/bench_decode" -m "$M/moe.gguf" --gpu "$gpu_index" --gpu-expert-cache "$CACHE_MIB" \
  -t "$T" -p "$P" -n 32 -r 2 --json
run moe_stream_llama_cpumoe "$TO" "$B/llama_peer_vulkan" -m "$M/moe.gguf" --cpu-moe -t "$T" -p "$P" -n 32 -r 2 --json
}

python3 - "$O" ${typed[@]+"${typed[@]}"} <<'PY'
import json, os, sys
o = sys.argv[1]
typed = sys.argv[2:]  # dense_<type> models (DENSE_TYPES)
def load(n):
    try:
        with open(os.path.join(o, n + ".json")) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception:
        return None
bw = load("bw") or {}
# Read + write traffic of the faster device copy (compute shader or copy engine): the bandwidth bound.
copy = max(bw.get("shader_copy_read_write_gb_s", 0), bw.get("d2d_read_write_gb_s", 0)) * 1e9
h2d = bw.get("h2d_gb_s", 0) * 1e9
out = {"bandwidth": bw, "runs": {}}
print(f"device copy bandwidth (read+write) {copy/1e9:.0f} GB/s, host->device {h2d/1e9:.1f} GB/s, "
      f"one dependent dispatch {bw.get('dependent_dispatch_us', 0):.1f} us")
print(f"matvec GB/s on a large matrix: {bw.get('matvec_gb_s')}")
# Per type and shape: weight GB/s of each rows-per-team variant, dependent dispatches (as in decode) /
# back to back (the shader's streaming rate); * marks the variant matvec() picks for the shape.
mv = bw.get("matvec") or []
if mv:
    print("matvec GB/s, dependent / back-to-back, [us per dependent matvec]; * = picked:")
    keys = []
    for r in mv:
        if (r["type"], r["shape"]) not in keys:
            keys.append((r["type"], r["shape"]))
    for t, shape in keys:
        rs = [r for r in mv if r["type"] == t and r["shape"] == shape]
        cells = [f"{r['variant']}{'*' if r['chosen'] else ' '} {r['gb_s_dependent']:6.0f} / {r['gb_s_back_to_back']:6.0f} [{r['us_dependent']:5.1f}]"
                 for r in rs]
        best = max(r["gb_s_back_to_back"] for r in rs)
        print(f"  {t:5s} {shape:15s} " + "   ".join(cells) + (f"   best {100*best*1e9/copy:3.0f}% of copy" if copy else ""))
for name in ["moe_sluice", "moe_llama", "dense_sluice", "dense_llama", "dense32_sluice", "dense32_llama", "dense72_sluice",
             "dense72_llama", "mix_sluice", "mix_llama", "ds2_sluice", "ds2_llama"] + \
            [m + s for m in typed for s in ("_sluice", "_llama")] + [
             "moe_stream_sluice_gpu",
             "moe_stream_sluice_cpu", "moe_stream_sluice_split", "moe_stream_sluice_auto", "moe_stream_llama_cpumoe"]:
    r = load(name)
    if not r:
        print(f"{name:26s} (no result)")
        continue
    ours = load(name.rsplit("_", 1)[0] + "_sluice") or load("moe_stream_sluice_gpu") or {}
    tok_s = r["decode_tok_s_median"]
    bpt = r.get("bytes_per_token") or ours.get("bytes_per_token")  # llama_peer does not count bytes
    row = {"decode_tok_s": tok_s, "bytes_per_token": bpt}
    line = f"{name:26s} {tok_s:8.2f} tok/s"
    if "GPU not used" in r.get("placement", ""):
        line += "  [" + r["placement"] + "]"
    if "stream" not in name and bpt and copy:
        row["fraction_of_copy_bound"] = bpt * tok_s / copy
        line += f"  {bpt*tok_s/1e9:7.1f} GB/s of weights = {100*bpt*tok_s/copy:5.1f}% of the copy bound ({copy/bpt:.0f} tok/s)"
    if "stream" in name and h2d:
        exp = r.get("expert_bytes_per_token") or ours.get("expert_bytes_per_token")
        slab = r.get("expert_slab_bytes") or ours.get("expert_slab_bytes")
        if exp:
            row["all_experts_over_h2d_tok_s"] = h2d / exp
            line += f"  (every routed expert over PCIe: {h2d/exp:.1f} tok/s)"
        if r.get("vram_cache_misses") is not None and slab:
            n_tok = r["decode_tokens"] * len(r["decode_tok_s_runs"])
            hits, miss = r["vram_cache_hits"], r["vram_cache_misses"]
            split = name.endswith("split") or "VRAM cache + CPU" in r.get("placement", "")
            moved = 0 if split else miss / n_tok * slab  # split: misses go to the CPU
            row["hit_rate"] = hits / max(1, hits + miss)
            if not moved and hits + miss:
                line += f"  hit rate {row['hit_rate']:.2f} (the rest on the CPU)"
            row["h2d_bytes_per_token"] = moved
            if moved:
                row["fraction_of_h2d_bound"] = moved * tok_s / h2d
                line += f"  hit rate {row['hit_rate']:.2f}, {moved/1e6:.0f} MB/token over PCIe = {100*moved*tok_s/h2d:.1f}% of H2D"
    if r.get("placement"):
        row["placement"] = r["placement"]
    if r.get("gpu_ms_per_token"):
        row["gpu_ms_per_token"] = r["gpu_ms_per_token"]
        line += f"  [GPU busy {r['gpu_ms_per_token']:.2f} ms/token]"
    out["runs"][name] = row
    print(line)
for m, a, b in [("moe", "moe_sluice", "moe_llama"), ("dense", "dense_sluice", "dense_llama"),
                ("dense32", "dense32_sluice", "dense32_llama"), ("dense72", "dense72_sluice", "dense72_llama"),
                ("mix", "mix_sluice", "mix_llama"), ("ds2", "ds2_sluice", "ds2_llama"),
                ("experts in host RAM (sluice auto)", "moe_stream_sluice_auto", "moe_stream_llama_cpumoe")] + \
               [(m, m + "_sluice", m + "_llama") for m in typed]:
    # with the decode targets (issue 8) where the model is in VRAM: >= 70% of the copy bound, >= 1.0x
    s, l = out["runs"].get(a), out["runs"].get(b)
    parts = []
    if s and l:
        r = s["decode_tok_s"] / l["decode_tok_s"]
        parts.append(f"sluice / llama.cpp Vulkan = {r:.2f}x" + (f" ({'>=' if r >= 1.0 else 'below'} 1.0x)" if "fraction_of_copy_bound" in s else ""))
    if s and "fraction_of_copy_bound" in s:
        f = s["fraction_of_copy_bound"]
        parts.append(f"{100*f:.1f}% of the copy bound ({'>=' if f >= 0.7 else 'below'} 70%)")
    if parts:
        print(f"{m}: " + ", ".join(parts))
for name in ["moe_stream_sluice_auto"]:
    if out["runs"].get(name, {}).get("placement"):
        print(f"{name}: {out['runs'][name]['placement']}")
json.dump(out, open(os.path.join(o, "summary.json"), "w"), indent=1)
PY
