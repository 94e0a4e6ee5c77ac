#!/usr/bin/env python3
"""Collects bench/b30.sh's pieces into one JSON file and prints the B30 table.

disk-bound ceiling (tok/s) = fio bandwidth / bytes sluice read per token (median), with fio at queue
depth 32 (what sluice keeps in flight at most, --io-depth 32); the median of the runs before and
after the decodes, since the shared disk drifts.
"""
import glob
import json
import os
import re
import statistics
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def peak(err_path):
    """memlimit's 'peak 3.6G of 4G' line: the cgroup's peak memory (RAM + page cache)."""
    try:
        m = re.search(r"memlimit: peak (\S+) of", open(err_path).read())
        return m.group(1) if m else None
    except OSError:
        return None


def main():
    d, res = sys.argv[1], sys.argv[2]
    opts = dict(zip(sys.argv[3::2], sys.argv[4::2]))
    fio = {}
    for p in sorted(glob.glob(os.path.join(d, "fio-*.json"))):
        tag = os.path.basename(p)[4:-5]  # before-qd8
        fio[tag] = load(p)["jobs"][0]["read"]["bw_bytes"] / 1e6
    bw24 = statistics.median([v for k, v in fio.items() if k.endswith("qd32")])
    out = {"read_ahead_kb": opts.get("--read-ahead-kb"), "cap": opts.get("--cap"), "memory": opts.get("--memory"),
           "fio_mb_s": fio, "fio_qd32_mb_s_median": bw24, "runs": {}}
    llama_cap = None
    if os.path.exists(os.path.join(d, "cap-llama.json")):
        llama_cap = load(os.path.join(d, "cap-llama.json"))
        llama_cap["memlimit_peak"] = peak(os.path.join(d, "cap-llama.err"))
        out["runs"]["cap-llama"] = llama_cap
    rows = []
    for p in sorted(glob.glob(os.path.join(d, "cap-*.json"))):
        tag = os.path.basename(p)[4:-5]
        if tag == "llama":
            continue
        j = load(p)
        j["memlimit_peak"] = peak(p[:-5] + ".err")
        bpt = j["bytes_read_per_token_median"]
        j["ceiling_tok_s"] = bw24 * 1e6 / bpt if bpt else None
        j["fraction_of_ceiling"] = j["decode_tok_s_median"] / j["ceiling_tok_s"] if bpt else None
        j["vs_llama"] = j["decode_tok_s_median"] / llama_cap["decode_tok_s_median"] if llama_cap else None
        out["runs"]["cap-" + tag] = j
        rows.append((tag, j))
    for tag in ("ram-sluice", "ram-llama"):
        p = os.path.join(d, tag + ".json")
        if os.path.exists(p):
            out["runs"][tag] = load(p)
    if "ram-sluice" in out["runs"] and "ram-llama" in out["runs"]:
        out["ram_ratio"] = out["runs"]["ram-sluice"]["decode_tok_s_median"] / out["runs"]["ram-llama"]["decode_tok_s_median"]
    with open(res, "w") as f:
        json.dump(out, f, indent=1)

    gib = 1 << 30
    print(f"B30 ({res}); read_ahead_kb {out['read_ahead_kb']}; fio MB/s " +
          ", ".join(f"{k} {v:.0f}" for k, v in fio.items()))
    print(f"under memlimit {out['cap']} (sluice --memory {out['memory']}):")
    print("| run | tok/s | vs llama.cpp | read/token | ceiling tok/s | of ceiling | hit rate | guesses used | RSS max | cgroup peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for tag, j in rows:
        print(f"| sluice {tag} | {j['decode_tok_s_median']:.3f} | "
              f"{j['vs_llama']:.2f}x | " if j["vs_llama"] else f"| sluice {tag} | {j['decode_tok_s_median']:.3f} | - | ", end="")
        print(f"{j['bytes_read_per_token_median'] / 1e6:.0f} MB | {j['ceiling_tok_s']:.3f} | "
              f"{100 * j['fraction_of_ceiling']:.0f}% | {j['hit_rate']:.3f} | {100 * j['guess_accuracy']:.0f}% | "
              f"{j['rss_bytes_max'] / gib:.2f} GiB | {j['memlimit_peak']} |")
    if llama_cap:
        print(f"| llama.cpp (mmap, repack off) | {llama_cap['decode_tok_s_median']:.3f} | 1.00x | - | - | - | - | - | "
              f"{llama_cap['rss_peak_bytes'] / gib:.2f} GiB (peak) | {llama_cap['memlimit_peak']} |")
    if rows:
        j = rows[0][1]
        print(f"routing: consecutive tokens share {j['routing_overlap']:.2f} of {j['experts_per_token']} experts per layer, "
              f"{j['routing_distinct_per_layer']:.1f} of {j['n_expert']} experts used per layer; time per token "
              f"(sluice {rows[0][0]}): attention {j['t_attention_ms_median']:.0f} ms, experts compute "
              f"{j['t_experts_compute_ms_median']:.0f}, experts wait {j['t_experts_wait_ms_median']:.0f}, other "
              f"{j['t_other_ms_median']:.0f}")
        for r in j["policy_replay"]:
            print(f"  replay: {r['slots']} slots ({100 * r['fraction']:.0f}% of experts): lru {r['lru']:.3f}  lfu {r['lfu']:.3f}")
    if "ram_ratio" in out:
        s, l = out["runs"]["ram-sluice"], out["runs"]["ram-llama"]
        print(f"in the page cache: sluice ({s['io_mode']}) {s['decode_tok_s_median']:.3f} tok/s, llama.cpp "
              f"{l['decode_tok_s_median']:.3f} tok/s: {out['ram_ratio']:.2f}x")


if __name__ == "__main__":
    main()
