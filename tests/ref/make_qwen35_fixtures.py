#!/usr/bin/env python3
"""Reference fixtures for the qwen35moe / qwen3next forward pass (run on the device machine).

Same recipe as make_qwen3_fixtures.py: for each tiny config build a seeded HF transformers model
(Qwen3_5MoeForCausalLM text model, or Qwen3NextForCausalLM), round its weights to fp16-representable
values, save it with a small trained byte-level BPE tokenizer, convert it with llama.cpp's own
convert_hf_to_gguf.py (--outtype f16 --no-mtp: the way users' files are made) and record
  NAME.gguf          the converter's output
  NAME.tokens.txt    the token ids fed in (real text through the tokenizer)
  NAME.logits.f32    HF float32 logits, n_tokens x n_vocab, row-major little-endian
  NAME.greedy.txt    prompt ids (first 16 tokens) then 32 greedy tokens from model.generate
  NAME.json          the config and shapes
and, for debugging only (DEBUG_DIR, not committed):
  NAME.hidden.f32    hidden states after the embedding and after every layer (L+1, T, n_embd)
  NAME.parts.f32     per layer: token mixer output, then MoE output (L, 2, T, n_embd)
  NAME.gguf.txt      the GGUF's metadata and tensor table as gguf-py reads them
  NAME.params.txt    HF parameter names and shapes

The sequences are 80 tokens: longer than HF's 64-token chunk in the chunked delta rule, so its
inter-chunk state carry is part of the reference, and long enough to exercise the conv and delta state.

usage: make_qwen35_fixtures.py CONVERTER_DIR QWEN3_TOKENIZER_CONFIG OUT_DIR DEBUG_DIR [NAME...]
  CONVERTER_DIR: llama.cpp's convert_hf_to_gguf.py with conversion/ and gguf-py/ beside it.
  QWEN3_TOKENIZER_CONFIG: a Qwen3 tokenizer_config.json (only its chat_template is used).
The committed fixtures were made with transformers 5.17.0 / torch 2.11.0 on the device machine
(43 s, CPU; HF_HUB_OFFLINE=1); it also printed HF's own step-by-step (recurrent) vs full-pass
(chunked) agreement: max rel err 2e-6 .. 7e-6.
"""
import dataclasses
import importlib.util
import inspect
import json
import math
import os
import subprocess
import sys
import tempfile
import traceback

import numpy as np
import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

CONV, QWEN_TOK_CONFIG, OUT, DEBUG = sys.argv[1:5]
ONLY = set(sys.argv[5:])
os.makedirs(OUT, exist_ok=True)
os.makedirs(DEBUG, exist_ok=True)

print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
for mod in ("fla", "causal_conv1d", "kernels"):
    print("  optional module", mod, "present" if importlib.util.find_spec(mod) else "absent", flush=True)


def find_class(*names):
    """The first of `names` transformers exports (class names moved between releases)."""
    for n in names:
        c = getattr(transformers, n, None)
        if c is not None:
            return c
    for modname in ("transformers.models.qwen3_5_moe", "transformers.models.qwen3_next"):
        try:
            m = __import__(modname, fromlist=["*"])
        except Exception:
            continue
        for n in names:
            if hasattr(m, n):
                return getattr(m, n)
    print("none of", names, "found; transformers has:",
          [n for n in dir(transformers) if "Qwen3" in n], flush=True)
    return None


Q35_CFG = find_class("Qwen3_5MoeTextConfig")
Q35_LM = find_class("Qwen3_5MoeForCausalLM")
NEXT_CFG = find_class("Qwen3NextConfig")
NEXT_LM = find_class("Qwen3NextForCausalLM")

# Original text written for these fixtures (training data for the tiny tokenizer and test prompts).
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

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_tokenizer(vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator([TEXT] * 4, trainer)
    tok.add_special_tokens(SPECIALS)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok


def randomize(model, seed):
    """Weights that make every part of the layer matter, rounded to fp16 values.

    HF's default init leaves the zero-centred norms at 1 + 0 and the layers near the identity. Here:
    norms 1 + 0.2 N (the zero-centred ones store w = 0.2 N; the layer computes x (1 + w) and the
    converter writes 1 + w), A = exp(A_log) in [0.02, 0.6] so decays exp(-A softplus(a + dt_bias)) keep
    a memory of several tokens, matrices N / sqrt(fan_in), embeddings and head 0.5 N."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            n = torch.randn(p.shape, generator=g)
            if name.endswith("linear_attn.norm.weight"):  # gated RMSNorm: weight used as is
                v = 1.0 + 0.2 * n
            elif name.endswith("norm.weight"):            # zero-centred RMSNorm: x * (1 + w)
                v = 0.2 * n
            elif name.endswith("A_log"):
                u = torch.rand(p.shape, generator=g)
                v = torch.log(0.02 + 0.58 * u)
            elif name.endswith("dt_bias"):
                v = 0.5 * n
            elif "embed_tokens" in name or "lm_head" in name:
                v = 0.5 * n
            else:
                v = n / p.shape[-1] ** 0.5
            p.copy_(v.half().float())


def make_config(cls, cfg):
    try:
        return cls(**cfg)
    except Exception as e:  # a field this release does not know: drop it and say so
        print("  config", cls.__name__, "rejected", cfg.keys(), ":", e, flush=True)
        known = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else \
            set(inspect.signature(cls.__init__).parameters)
        kept = {k: v for k, v in cfg.items() if k in known}
        print("  retrying without", sorted(set(cfg) - set(kept)), flush=True)
        return cls(**kept)


def dump_gguf(path, out_txt):
    try:
        sys.path.insert(0, os.path.join(CONV, "gguf-py"))
        from gguf import GGUFReader
        r = GGUFReader(path)
        with open(out_txt, "w") as f:
            for k, fld in r.fields.items():
                if k.startswith("tokenizer.ggml.") and k not in ("tokenizer.ggml.model", "tokenizer.ggml.pre"):
                    continue
                try:
                    val = fld.contents()
                except Exception:
                    val = "?"
                f.write(f"{k} = {val}\n")
            for t in r.tensors:
                f.write(f"{t.name} {t.tensor_type.name} {list(int(x) for x in t.shape)}\n")
        print(open(out_txt).read(), flush=True)
    except Exception:
        traceback.print_exc()


def layer_hooks(model):
    """Captures each layer's token-mixer and MoE outputs (debug dumps)."""
    parts, handles = {}, []
    for i, layer in enumerate(model.model.layers):
        mixer = getattr(layer, "linear_attn", None) or getattr(layer, "self_attn", None)
        for j, mod in enumerate((mixer, layer.mlp)):
            def hook(m, inp, out, key=(i, j)):
                t = out[0] if isinstance(out, tuple) else out
                parts[key] = t.detach()[0].float().numpy().copy()
            handles.append(mod.register_forward_hook(hook))
    return parts, handles


def make(name, cfg_cls, model_cls, cfg, seed, n_tokens=80):
    if ONLY and name not in ONLY:
        return
    if cfg_cls is None or model_cls is None:
        print(name, "SKIPPED: classes not found", flush=True)
        return
    print("===", name, model_cls.__name__, flush=True)
    torch.manual_seed(seed)
    tok = train_tokenizer(cfg["vocab_size"])
    config = make_config(cfg_cls, cfg)
    print("  layer_types", getattr(config, "layer_types", None), "rope", getattr(config, "rope_parameters", None),
          flush=True)
    model = model_cls(config).float().eval()
    randomize(model, seed)
    with open(os.path.join(DEBUG, name + ".params.txt"), "w") as f:
        for pn, p in model.named_parameters():
            f.write(f"{pn} {list(p.shape)}\n")

    ids = tok.encode(TEXT).ids[:n_tokens]
    assert len(ids) == n_tokens, len(ids)
    parts, handles = layer_hooks(model)
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=False, output_hidden_states=True)
        logits = out.logits[0].float().numpy()
        for h in handles:
            h.remove()
        try:
            hidden = torch.stack([h[0] for h in out.hidden_states]).float().numpy()
            hidden.astype("<f4").tofile(os.path.join(DEBUG, name + ".hidden.f32"))
            print("  hidden states", hidden.shape, flush=True)
        except Exception:
            traceback.print_exc()
        try:
            L = len(model.model.layers)
            arr = np.stack([np.stack([parts[(i, j)] for j in range(2)]) for i in range(L)])
            arr.astype("<f4").tofile(os.path.join(DEBUG, name + ".parts.f32"))
        except Exception:
            traceback.print_exc()
        # HF's own consistency: token by token through the cache (recurrent delta rule, conv state)
        # against the chunked full-sequence pass.
        try:
            past, worst = None, 0.0
            for t in range(n_tokens):
                o = model(torch.tensor([[ids[t]]]), past_key_values=past, use_cache=True)
                past = o.past_key_values
                row = o.logits[0, -1].float().numpy()
                worst = max(worst, float(np.abs(row - logits[t]).max() / np.abs(logits[t]).max()))
            print(f"  HF step-by-step vs full pass: max rel err {worst:.3g}", flush=True)
        except Exception:
            traceback.print_exc()
        prompt = torch.tensor([ids[:16]])
        gen = model.generate(prompt, max_new_tokens=32, do_sample=False, min_new_tokens=32,
                             pad_token_id=0, eos_token_id=None)[0].tolist()

    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d, safe_serialization=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        with open(QWEN_TOK_CONFIG) as f:
            qcfg = json.load(f)
        fast = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"),
                                       eos_token="<|im_end|>", pad_token="<|endoftext|>")
        fast.chat_template = qcfg["chat_template"]
        fast.save_pretrained(d)
        print("  config.json:", open(os.path.join(d, "config.json")).read(), flush=True)
        gguf_path = os.path.join(OUT, name + ".gguf")
        # The converter names the pre-tokenizer by hashing known tokenizers; ours is new, so tell it
        # the truth: it is the qwen2 pre-tokenizer. No MTP head in these models: --no-mtp.
        shim = ("import sys; sys.path.insert(0, %r); sys.argv = %r;\n"
                "import conversion.base as b; b.TextModel.get_vocab_base_pre = lambda self, t: 'qwen2'\n"
                "import convert_hf_to_gguf as c; c.main()\n") % (
                    CONV, ["convert_hf_to_gguf.py", d, "--outfile", gguf_path, "--outtype", "f16", "--no-mtp"])
        r = subprocess.run([sys.executable, "-c", shim], cwd=CONV, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": CONV + ":" + os.path.join(CONV, "gguf-py")})
        with open(os.path.join(DEBUG, name + ".convert.log"), "w") as f:
            f.write(r.stdout + r.stderr)
        if r.returncode != 0:
            print("  CONVERTER FAILED:\n", (r.stdout + r.stderr)[-4000:], flush=True)
            return
    dump_gguf(gguf_path, os.path.join(DEBUG, name + ".gguf.txt"))

    logits.astype("<f4").tofile(os.path.join(OUT, name + ".logits.f32"))
    with open(os.path.join(OUT, name + ".tokens.txt"), "w") as f:
        f.write(" ".join(map(str, ids)) + "\n")
    with open(os.path.join(OUT, name + ".greedy.txt"), "w") as f:
        f.write(" ".join(map(str, gen[:16])) + "\n" + " ".join(map(str, gen[16:])) + "\n")
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump({"arch": model_cls.__name__, "seed": seed, "config": cfg, "n_tokens": n_tokens,
                   "n_vocab": int(logits.shape[1]), "torch": torch.__version__,
                   "transformers": transformers.__version__,
                   "layer_types": list(getattr(config, "layer_types", []) or []),
                   "logits_absmax": float(np.abs(logits).max())}, f, indent=1)
    print(name, "ok: logits", logits.shape, "greedy", gen[16:24], flush=True)


def run(name, *args, **kw):
    try:
        make(name, *args, **kw)
    except Exception:
        print(name, "FAILED", flush=True)
        traceback.print_exc()


V = 400
BASE = dict(vocab_size=V, max_position_embeddings=512, rms_norm_eps=1e-6, hidden_act="silu",
            attention_bias=False, linear_conv_kernel_dim=4, tie_word_embeddings=False)
ROPE = lambda theta: dict(rope_parameters={"rope_type": "default", "rope_theta": theta})
LIN, FULL = "linear_attention", "full_attention"

# Five layers, two of them full attention (an explicit layer list, as the converter writes it), 16
# experts top-4, GQA 4:1, 4 value heads per key head like the real model (64 v / 16 k).
run("a", Q35_CFG, Q35_LM, dict(
    BASE, hidden_size=64, num_hidden_layers=5, layer_types=[LIN, FULL, LIN, LIN, FULL],
    num_attention_heads=4, num_key_value_heads=1, head_dim=32,
    linear_num_key_heads=2, linear_num_value_heads=8, linear_key_head_dim=16, linear_value_head_dim=16,
    num_experts=16, num_experts_per_tok=4, moe_intermediate_size=32, shared_expert_intermediate_size=64,
    **ROPE(10000000.0)), seed=11)
# The default pattern (every 4th layer full), 64 experts top-10 like the real model, key and value
# heads of different sizes (16 and 8), 16 value heads per 4 key heads.
run("b", Q35_CFG, Q35_LM, dict(
    BASE, hidden_size=64, num_hidden_layers=4,
    num_attention_heads=8, num_key_value_heads=2, head_dim=16,
    linear_num_key_heads=4, linear_num_value_heads=16, linear_key_head_dim=16, linear_value_head_dim=8,
    num_experts=64, num_experts_per_tok=10, moe_intermediate_size=8, shared_expert_intermediate_size=32,
    **ROPE(1000000.0)), seed=12)
# Rows of 256 so the input-side matrices can be requantized to K-quants (quantized-variant tests).
run("c", Q35_CFG, Q35_LM, dict(
    BASE, hidden_size=256, num_hidden_layers=2, layer_types=[LIN, FULL],
    num_attention_heads=4, num_key_value_heads=1, head_dim=64,
    linear_num_key_heads=2, linear_num_value_heads=8, linear_key_head_dim=32, linear_value_head_dim=32,
    num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=32,
    **ROPE(10000000.0)), seed=13)
# Qwen3-Next, the sibling: fused in_proj_qkvz / in_proj_ba, value heads grouped (not tiled), plain RoPE.
run("next_a", NEXT_CFG, NEXT_LM, dict(
    BASE, hidden_size=64, num_hidden_layers=4, layer_types=[LIN, FULL, LIN, FULL],
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128,
    linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=16, linear_value_head_dim=16,
    num_experts=16, num_experts_per_tok=3, moe_intermediate_size=32, shared_expert_intermediate_size=32,
    norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[], **ROPE(1000000.0)), seed=14)
