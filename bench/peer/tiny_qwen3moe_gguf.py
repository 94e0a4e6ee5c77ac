#!/usr/bin/env python3
"""Writes a tiny qwen3moe GGUF with random F32 weights, for smoke-testing the llama.cpp peer.

Pure Python (no numpy): GGUF v3 written by hand with struct. The file has no tokenizer
(tokenizer.ggml.model = "none" plus qwen3moe.vocab_size), which is enough for a program that
feeds token ids. It says nothing about real routing or speed: use it to check that things run.

    python3 bench/peer/tiny_qwen3moe_gguf.py OUT.gguf [--embd 64 --layers 2 --experts 8 ...]
"""
import argparse
import random
import struct
import sys
from array import array

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGN = 32
# GGUF metadata value types
T_UINT32, T_FLOAT32, T_STRING = 4, 6, 8
GGML_TYPE_F32 = 0


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv_bytes(key, vtype, value):
    out = gguf_str(key) + struct.pack("<I", vtype)
    if vtype == T_UINT32:
        return out + struct.pack("<I", value)
    if vtype == T_FLOAT32:
        return out + struct.pack("<f", value)
    if vtype == T_STRING:
        return out + gguf_str(value)
    raise ValueError(vtype)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--embd", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--experts-used", type=int, default=2)
    ap.add_argument("--ff-exp", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    assert sys.byteorder == "little", "GGUF data is little-endian; array.tobytes() writes native order"

    arch = "qwen3moe"
    kvs = [
        ("general.architecture", T_STRING, arch),
        ("general.name", T_STRING, "tiny-random-qwen3moe"),
        (f"{arch}.context_length", T_UINT32, a.ctx),
        (f"{arch}.embedding_length", T_UINT32, a.embd),
        (f"{arch}.block_count", T_UINT32, a.layers),
        (f"{arch}.feed_forward_length", T_UINT32, a.ff_exp * a.experts_used),
        (f"{arch}.attention.head_count", T_UINT32, a.heads),
        (f"{arch}.attention.head_count_kv", T_UINT32, a.kv_heads),
        (f"{arch}.attention.key_length", T_UINT32, a.head_dim),
        (f"{arch}.attention.value_length", T_UINT32, a.head_dim),
        (f"{arch}.attention.layer_norm_rms_epsilon", T_FLOAT32, 1e-6),
        (f"{arch}.rope.freq_base", T_FLOAT32, 1e6),
        (f"{arch}.expert_count", T_UINT32, a.experts),
        (f"{arch}.expert_used_count", T_UINT32, a.experts_used),
        (f"{arch}.expert_feed_forward_length", T_UINT32, a.ff_exp),
        (f"{arch}.vocab_size", T_UINT32, a.vocab),
        ("tokenizer.ggml.model", T_STRING, "none"),
        ("general.alignment", T_UINT32, ALIGN),
    ]

    # (name, ggml dims with ne0 first, std); std 0 means all ones (norm weights)
    E, H, KV, D, X, F, V = a.embd, a.heads, a.kv_heads, a.head_dim, a.experts, a.ff_exp, a.vocab
    tensors = [("token_embd.weight", (E, V), 1.0), ("output_norm.weight", (E,), 0),
               ("output.weight", (E, V), 0.05)]
    for i in range(a.layers):
        p = f"blk.{i}."
        tensors += [
            (p + "attn_norm.weight", (E,), 0),
            (p + "attn_q.weight", (E, H * D), 0.05),
            (p + "attn_k.weight", (E, KV * D), 0.05),
            (p + "attn_v.weight", (E, KV * D), 0.05),
            (p + "attn_output.weight", (H * D, E), 0.02),
            (p + "attn_q_norm.weight", (D,), 0),
            (p + "attn_k_norm.weight", (D,), 0),
            (p + "ffn_norm.weight", (E,), 0),
            (p + "ffn_gate_inp.weight", (E, X), 0.5),
            (p + "ffn_gate_exps.weight", (E, F, X), 0.05),
            (p + "ffn_up_exps.weight", (E, F, X), 0.05),
            (p + "ffn_down_exps.weight", (F, E, X), 0.02),
        ]

    header = GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(tensors), len(kvs))
    header += b"".join(kv_bytes(*kv) for kv in kvs)
    offset, infos = 0, []
    for name, dims, _ in tensors:
        n = 1
        for d in dims:
            n *= d
        infos.append(gguf_str(name) + struct.pack("<I", len(dims)) +
                     struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", GGML_TYPE_F32, offset))
        offset += (n * 4 + ALIGN - 1) // ALIGN * ALIGN
    header += b"".join(infos)
    header += b"\0" * (-len(header) % ALIGN)

    rng = random.Random(a.seed)
    with open(a.out, "wb") as f:
        f.write(header)
        for name, dims, std in tensors:
            n = 1
            for d in dims:
                n *= d
            vals = array("f", [1.0] * n if std == 0 else (rng.gauss(0.0, std) for _ in range(n)))
            data = vals.tobytes()
            f.write(data + b"\0" * (-len(data) % ALIGN))
    print(f"wrote {a.out}: {len(tensors)} tensors, {offset + len(header)} bytes")


if __name__ == "__main__":
    main()
