#!/usr/bin/env python3
"""Reference fixtures for the qwen3moe / qwen3 forward pass (run on the device machine).

For each tiny config: build a seeded HF transformers model, round its weights to fp16-representable
values (so the converter's F16 output holds them exactly and an all-F32 engine can match PyTorch's
float32 logits), save it with a small trained byte-level BPE tokenizer, convert it with llama.cpp's own
convert_hf_to_gguf.py (the way users' files are made), and record
  NAME.gguf          the converter's output (--outtype f16)
  NAME.tokens.txt    the token ids fed in (real text through the tokenizer)
  NAME.logits.f32    HF float32 logits, n_tokens x n_vocab, row-major little-endian
  NAME.greedy.txt    prompt ids (first 16 tokens) then 32 greedy tokens from model.generate
  NAME.json          the config and shapes

usage: make_qwen3_fixtures.py CONVERTER_DIR QWEN3_TOKENIZER_CONFIG OUT_DIR [NAME...]
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig,
                          Qwen3MoeForCausalLM)

CONV, QWEN_TOK_CONFIG, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
ONLY = set(sys.argv[4:])  # regenerate just these fixtures
os.makedirs(OUT, exist_ok=True)

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
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[])
    tok.train_from_iterator([TEXT] * 4, trainer)
    tok.add_special_tokens(SPECIALS)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok


def randomize(model, seed):
    # HF's default init (std 0.02, norms = 1) makes every layer nearly the identity and routing flat;
    # larger weights and non-trivial norms make a wrong transpose or a missed norm visible.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            p.copy_(p.half().float())  # exactly representable in the converter's f16 output


def make(name, cfg_cls, model_cls, cfg, seed, n_tokens=64):
    if ONLY and name not in ONLY:
        return
    torch.manual_seed(seed)
    tok = train_tokenizer(cfg["vocab_size"])
    config = cfg_cls(**cfg)
    model = model_cls(config).float().eval()
    randomize(model, seed)
    if config.tie_word_embeddings:
        model.tie_weights()

    ids = tok.encode(TEXT).ids[:n_tokens]
    assert len(ids) == n_tokens, len(ids)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float().numpy()
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
        gguf_path = os.path.join(OUT, name + ".gguf")
        # The converter names the pre-tokenizer by hashing known tokenizers; ours is new, so tell it
        # the truth: it is the qwen2 pre-tokenizer.
        shim = ("import sys; sys.path.insert(0, %r); sys.argv = %r;\n"
                "import conversion.base as b; b.TextModel.get_vocab_base_pre = lambda self, t: 'qwen2'\n"
                "import convert_hf_to_gguf as c; c.main()\n") % (
                    CONV, ["convert_hf_to_gguf.py", d, "--outfile", gguf_path, "--outtype", "f16"])
        subprocess.run([sys.executable, "-c", shim], check=True, cwd=CONV,
                       env={**os.environ, "PYTHONPATH": CONV + ":" + os.path.join(CONV, "gguf-py")})

    logits.astype("<f4").tofile(os.path.join(OUT, name + ".logits.f32"))
    with open(os.path.join(OUT, name + ".tokens.txt"), "w") as f:
        f.write(" ".join(map(str, ids)) + "\n")
    with open(os.path.join(OUT, name + ".greedy.txt"), "w") as f:
        f.write(" ".join(map(str, gen[:16])) + "\n" + " ".join(map(str, gen[16:])) + "\n")
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump({"arch": model_cls.__name__, "seed": seed, "config": cfg, "n_tokens": n_tokens,
                   "n_vocab": int(logits.shape[1]), "torch": torch.__version__,
                   "logits_absmax": float(np.abs(logits).max())}, f, indent=1)
    print(name, "ok: logits", logits.shape, "greedy", gen[16:24], flush=True)


V = 400
MOE = dict(vocab_size=V, max_position_embeddings=512, rms_norm_eps=1e-6, decoder_sparse_step=1,
           mlp_only_layers=[], norm_topk_prob=True, attention_bias=False, hidden_act="silu")
ROPE = lambda theta: dict(rope_parameters={"rope_type": "default", "rope_theta": theta})

# tied head, 8 experts top-2, head_dim (32) != n_embd / n_head (16)
make("moe_a", Qwen3MoeConfig, Qwen3MoeForCausalLM, dict(
    MOE, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
    num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, intermediate_size=128,
    tie_word_embeddings=True, **ROPE(10000.0)), seed=1)
# untied head, 64 experts top-8, GQA 4:1, three layers
make("moe_b", Qwen3MoeConfig, Qwen3MoeForCausalLM, dict(
    MOE, hidden_size=64, num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2, head_dim=16,
    num_experts=64, num_experts_per_tok=8, moe_intermediate_size=16, intermediate_size=128,
    tie_word_embeddings=False, **ROPE(1000000.0)), seed=2)
# rows of 256 so every weight can be requantized to the K-quants; untied (the tied ones collapse
# onto one repeated token under greedy decoding, which makes a weak test)
make("moe_c", Qwen3MoeConfig, Qwen3MoeForCausalLM, dict(
    MOE, hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
    num_experts=4, num_experts_per_tok=2, moe_intermediate_size=256, intermediate_size=512,
    tie_word_embeddings=False, **ROPE(10000.0)), seed=3)
# dense qwen3
make("dense_a", Qwen3Config, Qwen3ForCausalLM, dict(
    vocab_size=V, max_position_embeddings=512, rms_norm_eps=1e-6, attention_bias=False, hidden_act="silu",
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=32,
    intermediate_size=96, tie_word_embeddings=False, **ROPE(10000.0)), seed=4)
