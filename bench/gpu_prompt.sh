#!/usr/bin/env bash
# Prompts on a GPU: sluice's Vulkan backend (dense products on tensor cores where the device has
# cooperative matrices: mmt.comp's 128-row tiles where they fill the GPU, else mm.comp's 64 x 64; with
# SLUICE_GPU_MMT=0 only mm.comp's; with SLUICE_GPU_COOPMAT=0 the int8 tiles) against llama.cpp's prebuilt
# Vulkan build (bench/peer/llama_peer_vulkan) on the same GGUF files in the same run, then the experts
# on the CPU (host-expert prompt batches).
#
#   bench/gpu_prompt.sh BIN_DIR OUT_DIR
#     BIN_DIR: sluice, bench_decode, llama_peer_vulkan (+ its libraries in BIN_DIR/lib)
#     env: MODELS_DIR (default /tmp/gpu-models), P (prompt tokens, default 2048), T (CPU threads,
#          default: all), TO (seconds per run, default 150), SKIP_CPU=1 (no CPU-expert runs),
#          ONLY="moe lite" (the models to run, default all)
#
# Models (`sluice gen-model`, Q4_K, written when missing): d8 (Qwen3-8B's shape), moe (Qwen3-30B-A3B's),
# q35 (Qwen3.5-35B-A3B's, qwen35moe), lite (DeepSeek-V2-Lite's, deepseek2: experts of 1408, so their
# downs and attn_k_b take llama.cpp's Q5_0 fallback). Output: OUT_DIR/<model>_p<P>_{cm,mmt0,cm0,l}.json, <model>_cpu.json
# and a line per run on stdout (prompt runs: the first includes shader compilation; compare the others).
set -uo pipefail
B=$1
O=$2
M=${MODELS_DIR:-/tmp/gpu-models}
P=${P:-2048}
T=${T:-$(nproc)}
TO=${TO:-150}
mkdir -p "$O" "$M"
ONLY=${ONLY:-d8 moe q35 lite}
gen() {
    local f=$M/$1.gguf
    case " $ONLY " in *" $1 "*) ;; *) return ;; esac
    shift
    [ -f "$f" ] || "$B/sluice" gen-model "$@" --type q4_K --ctx 32768 --out "$f" >/dev/null 2>"$O/gen.err" || { cat "$O/gen.err"; exit 1; }
}
gen d8 --arch qwen3 --layers 36 --embd 4096 --heads 32 --kv-heads 8 --head-dim 128 --ff 12288 --vocab 151936
gen moe --arch qwen3moe --layers 48 --embd 2048 --heads 32 --kv-heads 4 --head-dim 128 --experts 128 --used 8 \
    --ff-exp 768 --vocab 151936
gen q35 --arch qwen35moe --layers 40 --embd 2048 --heads 16 --kv-heads 2 --head-dim 256 --experts 256 --used 8 \
    --ff-exp 512 --ff-shexp 512 --vocab 248320 --ssm-k-heads 16 --ssm-v-heads 32 --ssm-head-dim 128 --conv-kernel 4 \
    --full-every 4
gen lite --arch deepseek2 --layers 27 --embd 2048 --heads 16 --head-dim 192 --v-head-dim 128 --rope-dims 64 \
    --kv-lora 512 --experts 64 --used 6 --ff-exp 1408 --shared 2 --dense-lead 1 --ff 10944 --vocab 102400
field() { grep -o "\"$1\":[^]]*]\?" "$2" | head -1; }
for m in $ONLY; do
    for v in cm mmt0 cm0 l; do
        f=$O/${m}_p${P}_$v.json
        case $v in
            cm) timeout "$TO" "$B/bench_decode" -m "$M/$m.gguf" --gpu auto -t "$T" -p "$P" -n 32 -r 2 --prompt-runs 3 --json >"$f" 2>"$f.err" ;;
            mmt0) SLUICE_GPU_MMT=0 timeout "$TO" "$B/bench_decode" -m "$M/$m.gguf" --gpu auto -t "$T" -p "$P" -n 32 -r 2 \
                    --prompt-runs 3 --json >"$f" 2>"$f.err" ;;
            cm0) SLUICE_GPU_COOPMAT=0 timeout "$TO" "$B/bench_decode" -m "$M/$m.gguf" --gpu auto -t "$T" -p "$P" -n 32 -r 2 \
                    --prompt-runs 3 --json >"$f" 2>"$f.err" ;;
            l) LD_LIBRARY_PATH=$B/lib timeout "$TO" "$B/llama_peer_vulkan" -m "$M/$m.gguf" -t "$T" -p "$P" -n 32 -r 2 \
                  --prompt-runs 3 --json >"$f" 2>"$f.err" ;;
        esac
        echo "$m p$P $v: $(field prompt_tok_s_runs "$f") $(field decode_tok_s_runs "$f")"
    done
done
for m in moe q35 lite; do
    case " $ONLY " in *" $m "*) ;; *) continue ;; esac
    [ "${SKIP_CPU:-0}" = 1 ] && break
    f=$O/${m}_cpu.json
    timeout "$TO" "$B/bench_decode" -m "$M/$m.gguf" --gpu auto --gpu-experts cpu --gpu-expert-cache 4096 -t "$T" -p 512 \
        -n 16 -r 1 --prompt-runs 2 --json >"$f" 2>"$f.err"
    echo "$m experts on the CPU, p512: $(field prompt_tok_s_runs "$f") $(field decode_tok_s_runs "$f")"
done
