#!/usr/bin/env bash
# How long a key typed during generation takes to appear on `sluice chat`'s screen, with the engine
# busy (both cores) and the model streaming from disk under a memory cap.
# usage: bench/chat_key_latency.sh [MODEL.gguf] [CAP]   (default: the 1.7 GB bench model, cap 1G)
# Prints each sample and the median; tmux send-keys + capture-pane overhead is included (a few ms:
# the same loop with the engine idle shows it).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-build/models/bench-1.7g-q4k.gguf}
cap=${2:-1G}
[ -f "$model" ] || { echo "no $model (bench/decode.sh makes it)" >&2; exit 2; }
sock=sluice-lat-$$
home=$(mktemp -d)
trap 'tmux -L $sock kill-server 2>/dev/null; rm -rf "$home"' EXIT
tmux -L $sock -f /dev/null new-session -d -x 100 -y 30 \
  "HOME=$home ../shared/tools/memlimit $cap build/sluice chat $model -t 2 --temp 1 --top-k 0 --top-p 1 --min-p 0; sleep 30"
python3 - "$sock" <<'PY'
import subprocess, sys, time, statistics
sock = sys.argv[1]
tm = lambda *a: subprocess.run(["tmux", "-L", sock, *a], capture_output=True, text=True).stdout
def wait(s, t=120):
    end = time.time() + t
    while time.time() < end:
        scr = tm("capture-pane", "-p")
        if s in scr: return scr
        time.sleep(0.05)
    sys.exit(f"never saw {s!r}:\n{scr}")
def echo_ms(ch):
    t0 = time.perf_counter(); tm("send-keys", "-l", ch)
    while "❯ " + ch not in tm("capture-pane", "-p"): pass
    ms = (time.perf_counter() - t0) * 1e3
    tm("send-keys", "BSpace"); time.sleep(0.05)
    return ms
wait("ready:")
idle = [echo_ms(c) for c in "abcde"]
tm("send-keys", "-l", "tell me about rivers"); tm("send-keys", "Enter")
time.sleep(1.0)
busy = []
def sample(chars):
    for c in chars:
        scr = tm("capture-pane", "-p")
        phase = "prompt" if "prompt [" in scr else "decode" if "generating" in scr else "other"
        busy.append((echo_ms(c), phase)); time.sleep(0.2)
sample("fghijklmno")            # while the prompt is processed
wait("generating", 600)
sample("pqrstuvwxy")            # while tokens are generated
tok = [l for l in tm("capture-pane", "-p").splitlines() if l.startswith("tok/s")]
print("idle engine:  " + " ".join(f"{x:.1f}" for x in idle) + f"  median {statistics.median(idle):.1f} ms")
for ph in ("prompt", "decode"):
    xs = [x for x, p in busy if p == ph]
    if xs: print(f"busy ({ph}): " + " ".join(f"{x:.1f}" for x in xs) + f"  median {statistics.median(xs):.1f} ms, max {max(xs):.1f} ms")
print("gauges: " + (tok[0] if tok else "?"))
tm("send-keys", "Escape")
PY
