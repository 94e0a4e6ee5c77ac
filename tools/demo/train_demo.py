#!/usr/bin/env python3
"""Trains sluice's demo model on the device machine (one GPU, a few minutes) and exports it.

Input: the (question, answer) entries written by dict_to_chat.py. Steps:
 1. a byte-level BPE tokenizer (HF tokenizers; Qwen2's pre-tokenizer regex; ChatML specials);
 2. a seeded qwen3moe model (HF transformers' Qwen3MoeForCausalLM, ~20M parameters, 16 experts, top-2),
    trained in ChatML on conversations of 1-8 dictionary turns, loss on the assistant's tokens (and its
    <|im_end|>), bf16 autocast, AdamW, cosine schedule;
 3. every weight matrix that sluice stores as Q8_0 is projected onto the Q8_0 grid (blocks of 32 along
    the row, scale amax/127 rounded to fp16, as ggml's quantize_row_q8_0 does), so the Q8_0 file holds
    exactly the weights PyTorch evaluates: held-out loss is measured before and after;
 4. save_pretrained + tokenizer + a ChatML chat_template, llama.cpp's convert_hf_to_gguf.py --outtype f32,
    then sluice's own writer (`sluice quantize ... --type q8_0`) for the shipped file;
 5. HF float32 logits for a fixed conversation and a greedy answer, for tests/test_demo_model.cpp.

usage: train_demo.py DATA_DIR CONVERTER_DIR SLUICE_BIN OUT_DIR [--steps N] [--smoke]
"""
import argparse
import gzip
import json
import math
import os
import random
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3MoeConfig, Qwen3MoeForCausalLM

T0 = time.time()
SEED = 1913
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CHAT_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
                 " + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
                 "{{ '<|im_start|>assistant\\n' }}{% endif %}")
SYSTEMS = ["You are a helpful assistant.", "You are sluice's demo model. Answer briefly.",
           "You are a dictionary. Define the words you are asked about."]
VOCAB = 8192
SEQ = 256
MODEL = dict(vocab_size=VOCAB, hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
             num_key_value_heads=2, head_dim=64, num_experts=16, num_experts_per_tok=2,
             moe_intermediate_size=128, intermediate_size=512, decoder_sparse_step=1, mlp_only_layers=[],
             norm_topk_prob=True, max_position_embeddings=2048, rms_norm_eps=1e-6, attention_bias=False,
             hidden_act="silu", tie_word_embeddings=True, router_aux_loss_coef=0.01, output_router_logits=True,
             rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, bos_token_id=None,
             eos_token_id=VOCAB - 1, pad_token_id=VOCAB - 3)


def log(*a):
    print(f"[{time.time() - T0:6.1f}s]", *a, flush=True)


def load(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------------------------------------------
# Tokenizer and conversations

def train_tokenizer(entries):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - len(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])

    def texts():
        yield "user\nassistant\nsystem\n" + "\n".join(SYSTEMS)
        for e in entries:
            yield "\n".join(e["q"]) + "\n" + e["a"]
    tok.train_from_iterator(texts(), trainer)
    tok.add_special_tokens(SPECIALS)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    return tok


class Chat:
    """ChatML pieces as token ids. Special tokens and the newline after a role split the pre-tokenizer's
    pieces, so a conversation's ids are the concatenation of its pieces' ids (checked in main)."""

    def __init__(self, tok):
        self.tok = tok
        self.start, self.end = tok.token_to_id("<|im_start|>"), tok.token_to_id("<|im_end|>")
        enc = lambda s: tok.encode(s).ids
        self.nl = enc("\n")
        self.user, self.asst, self.sys = enc("user\n"), enc("assistant\n"), enc("system\n")
        self.enc = enc

    def turn(self, role_ids, content_ids, train):
        ids = [self.start] + role_ids + content_ids + [self.end] + self.nl
        # Learn the assistant's content and its <|im_end|>; never the prompt.
        mask = [0] * (1 + len(role_ids)) + [int(train)] * (len(content_ids) + 1) + [0] * len(self.nl)
        return ids, mask

    def text(self, msgs, add_generation_prompt):
        s = "".join(f"<|im_start|>{r}\n{c}<|im_end|>\n" for r, c in msgs)
        return s + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def tokenize_entries(chat, entries):
    flat = [q for e in entries for q in e["q"]] + [e["a"] for e in entries]
    ids = [enc.ids for enc in chat.tok.encode_batch(flat)]
    out, i = [], 0
    for e in entries:
        out.append((ids[i:i + len(e["q"])], None))
        i += len(e["q"])
    return [(qs, ids[i + k]) for k, (qs, _) in enumerate(out)]


def pack_epoch(chat, tok_entries, rng, sys_ids):
    """Every entry once, in conversations of 1-8 turns (a system turn in 10%), padded to SEQ."""
    order = rng.permutation(len(tok_entries))
    seqs, masks = [], []
    ids, mask, turns, max_turns = [], [], 0, 1
    for i in order:
        qs, a = tok_entries[i]
        q = qs[rng.integers(len(qs))]
        u_ids, u_mask = chat.turn(chat.user, q, False)
        a_ids, a_mask = chat.turn(chat.asst, a, True)
        if ids and (len(ids) + len(u_ids) + len(a_ids) > SEQ or turns >= max_turns):
            seqs.append(ids + [chat.tok.token_to_id("<|endoftext|>")] * (SEQ - len(ids)))
            masks.append(mask + [0] * (SEQ - len(mask)))
            ids, mask, turns = [], [], 0
        if not ids:
            max_turns = int(rng.integers(1, 9))
            if rng.random() < 0.1:
                ids, mask = chat.turn(chat.sys, sys_ids[rng.integers(len(sys_ids))], False)
        if len(ids) + len(u_ids) + len(a_ids) > SEQ:
            continue  # an over-long entry (rare): skipped
        ids += u_ids + a_ids
        mask += u_mask + a_mask
        turns += 1
    if ids:
        seqs.append(ids + [chat.tok.token_to_id("<|endoftext|>")] * (SEQ - len(ids)))
        masks.append(mask + [0] * (SEQ - len(mask)))
    return np.array(seqs, dtype=np.int64), np.array(masks, dtype=np.bool_)


def single_turns(chat, tok_entries, rng):
    """Held-out evaluation: one conversation per entry, a random phrasing (fixed by the seed)."""
    seqs, masks = [], []
    for qs, a in tok_entries:
        u_ids, u_mask = chat.turn(chat.user, qs[rng.integers(len(qs))], False)
        a_ids, a_mask = chat.turn(chat.asst, a, True)
        ids, mask = (u_ids + a_ids)[:SEQ], (u_mask + a_mask)[:SEQ]
        seqs.append(ids + [0] * (SEQ - len(ids)))
        masks.append(mask + [0] * (SEQ - len(mask)))
    return np.array(seqs, dtype=np.int64), np.array(masks, dtype=np.bool_)


# ---------------------------------------------------------------------------------------------------
# Model

def grouped_experts_forward(self, hidden_states, top_k_index, top_k_weights):
    """Training-time Qwen3MoeExperts.forward: tokens sorted by expert, two grouped GEMMs in bf16.
    Same maths as HF's eager loop (gate_up_proj (E, 2I, H): gate rows first; down_proj (E, H, I))."""
    T, H = hidden_states.shape
    K = top_k_index.shape[1]
    flat = top_k_index.reshape(-1)
    order = torch.argsort(flat, stable=True)
    token = order // K
    offs = torch.cumsum(torch.bincount(flat, minlength=self.num_experts), 0).to(torch.int32)
    x = hidden_states[token].to(torch.bfloat16)                                          # (T*K, H)
    gu = torch._grouped_mm(x, self.gate_up_proj.to(torch.bfloat16).transpose(-2, -1), offs=offs)
    gate, up = gu.chunk(2, dim=-1)                                                       # (T*K, I)
    y = torch._grouped_mm(F.silu(gate) * up, self.down_proj.to(torch.bfloat16).transpose(-2, -1), offs=offs)
    y = y.float() * top_k_weights.reshape(-1)[order, None].float()
    out = torch.zeros(T, H, device=hidden_states.device, dtype=torch.float32).index_add_(0, token, y)
    return out.to(hidden_states.dtype)


def looped_experts_forward(self, hidden_states, top_k_index, top_k_weights):
    """Fallback where torch._grouped_mm is unavailable: the same sort, one matmul pair per expert."""
    T, H = hidden_states.shape
    K = top_k_index.shape[1]
    flat = top_k_index.reshape(-1)
    order = torch.argsort(flat, stable=True)
    token = order // K
    counts = torch.bincount(flat, minlength=self.num_experts).tolist()
    x, ys, start = hidden_states[token], [], 0
    for e, c in enumerate(counts):
        if c:
            gate, up = F.linear(x[start:start + c], self.gate_up_proj[e]).chunk(2, dim=-1)
            ys.append(F.linear(F.silu(gate) * up, self.down_proj[e]))
            start += c
    y = torch.cat(ys).float() * top_k_weights.reshape(-1)[order, None].float()
    out = torch.zeros(T, H, device=hidden_states.device, dtype=torch.float32).index_add_(0, token, y)
    return out.to(hidden_states.dtype)


def use_fast_experts(model):
    """Installs the grouped path if forward and backward work here, else the looped one."""
    import types
    experts = [m for m in model.modules() if type(m).__name__ == "Qwen3MoeExperts"]
    assert len(experts) == MODEL["num_hidden_layers"], len(experts)
    fn = grouped_experts_forward
    try:
        e = experts[0]
        h = torch.randn(64, MODEL["hidden_size"], device=e.down_proj.device, requires_grad=True)
        idx = torch.randint(0, MODEL["num_experts"], (64, 2), device=h.device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = grouped_experts_forward(e, h, idx, torch.full((64, 2), 0.5, device=h.device))
        y.sum().backward()
        e.zero_grad(set_to_none=True)
    except Exception as ex:  # noqa: BLE001 - any failure means: use the plain loop
        log("grouped_mm unavailable, looping over experts:", repr(ex)[:300])
        fn = looped_experts_forward
    for m in experts:
        m.forward = types.MethodType(fn, m)
    return fn.__name__


def quantized_names(model):
    """Parameters sluice writes as Q8_0: every matrix except norms and the router (quant_plan.h)."""
    return [n for n, p in model.named_parameters() if p.dim() >= 2 and "norm" not in n and ".mlp.gate." not in n]


@torch.no_grad()
def project_q8_0(model):
    """Rounds each of those matrices onto the Q8_0 grid along its rows (HF's last dimension is GGUF's
    ne0 for every one of them: Linear (out, in), embeddings (vocab, embd), experts (E, rows, cols)).
    Requantizing the result reproduces it exactly, so the Q8_0 file is the model evaluated here."""
    for n in quantized_names(model):
        p = dict(model.named_parameters())[n]
        x = p.detach().float().reshape(-1, 32)
        amax = x.abs().max(dim=1, keepdim=True).values
        d = amax / 127
        inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
        q = torch.round(x * inv)
        half = (x * inv - torch.trunc(x * inv)).abs() == 0.5  # roundf: ties away from zero
        q = torch.where(half, torch.trunc(x * inv) + torch.sign(x), q).clamp(-127, 127)
        p.copy_((d.half().float() * q).reshape(p.shape))


@torch.no_grad()
def masked_loss(model, seqs, masks, device, batch=256, autocast=True):
    tot, n = 0.0, 0
    for i in range(0, len(seqs), batch):
        x = torch.from_numpy(seqs[i:i + batch]).to(device)
        m = torch.from_numpy(masks[i:i + batch]).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=x).logits
        lp = F.cross_entropy(logits[:, :-1].float().reshape(-1, VOCAB), x[:, 1:].reshape(-1), reduction="none")
        mm = m[:, 1:].reshape(-1)
        tot += float(lp[mm].sum())
        n += int(mm.sum())
    return tot / n


@torch.no_grad()
def greedy(model, ids, chat, device, max_new=64):
    ids = list(ids)
    out = []
    for _ in range(max_new):
        logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, -1]
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        ids.append(nxt)
        if nxt == chat.end:
            break
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("conv")
    ap.add_argument("sluice")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--deadline", type=float, default=380.0, help="stop training this many seconds after start")
    ap.add_argument("--smoke", action="store_true", help="few steps, checks and timings only")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    dev = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 references must be float32
    report = {"seed": SEED, "model": MODEL, "torch": torch.__version__, "args": vars(args)}

    train, valid = load(os.path.join(args.data, "train.jsonl.gz")), load(os.path.join(args.data, "valid.jsonl.gz"))
    log(f"entries: train {len(train)} valid {len(valid)}")
    tok = train_tokenizer(train)
    chat = Chat(tok)
    log("tokenizer trained:", tok.get_vocab_size())
    tr_tok, va_tok = tokenize_entries(chat, train), tokenize_entries(chat, valid)
    sys_ids = [chat.enc(s) for s in SYSTEMS]
    rng = np.random.default_rng(SEED)
    # The piecewise ids must equal the whole conversation's (that is what sluice will tokenize).
    for e in random.Random(SEED).sample(train, 200):
        msgs = [("user", e["q"][0]), ("assistant", e["a"])]
        ids = sum((chat.turn(chat.user if r == "user" else chat.asst, chat.enc(c), False)[0] for r, c in msgs), [])
        assert tok.encode(chat.text(msgs, False)).ids == ids, e
    va_seqs, va_masks = single_turns(chat, va_tok, np.random.default_rng(SEED + 1))
    tr_sample = [tr_tok[i] for i in np.random.default_rng(SEED + 2).choice(len(tr_tok), len(va_tok), replace=False)]
    tr_seqs, tr_masks = single_turns(chat, tr_sample, np.random.default_rng(SEED + 3))
    log(f"tokenized; valid tokens learned: {int(va_masks.sum())}")

    config = Qwen3MoeConfig(**MODEL)
    model = Qwen3MoeForCausalLM(config).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    report["n_params"] = n_params
    log(f"params {n_params / 1e6:.2f}M, attn impl {getattr(model.config, '_attn_implementation', '?')}")

    # The grouped path against HF's own eager loop, same weights (bf16 tolerance).
    ref = Qwen3MoeForCausalLM(config).to(dev)
    ref.load_state_dict(model.state_dict())
    report["experts_forward"] = use_fast_experts(model)
    x = torch.from_numpy(va_seqs[:8]).to(dev)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        a, b = model(input_ids=x).logits.float(), ref(input_ids=x).logits.float()
    report["grouped_vs_eager_maxdiff"] = float((a - b).abs().max())
    log("grouped vs eager max |diff| (bf16):", report["grouped_vs_eager_maxdiff"])
    del ref

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    steps = 30 if args.smoke else args.steps
    warmup = min(200, steps // 10)
    sched = lambda s: (s + 1) / warmup if s < warmup else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))

    epoch, pos, seqs, masks = 0, 0, None, None
    history, t_train, tokens_seen = [], time.time(), 0
    t_last, tok_last = t_train, 0
    step = 0
    for step in range(steps):
        if seqs is None or pos + args.batch > len(seqs):
            seqs, masks = pack_epoch(chat, tr_tok, rng, sys_ids)
            seqs, masks = torch.from_numpy(seqs).to(dev), torch.from_numpy(masks).to(dev)
            pos, epoch = 0, epoch + 1
            if epoch == 1:
                log(f"epoch: {len(seqs)} sequences of {SEQ}, {float(masks.float().mean()):.2f} learned")
        x, m = seqs[pos:pos + args.batch], masks[pos:pos + args.batch]
        pos += args.batch
        for g in opt.param_groups:
            g["lr"] = args.lr * sched(step)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(input_ids=x)
        labels = torch.where(m[:, 1:], x[:, 1:], -100)
        ce = F.cross_entropy(out.logits[:, :-1].float().reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
        aux = out.aux_loss if out.aux_loss is not None else torch.zeros((), device=dev)
        loss = ce + config.router_aux_loss_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens_seen += x.numel()
        if step % 100 == 0 or step == steps - 1 or (args.smoke and step % 5 == 0):
            torch.cuda.synchronize()
            el = time.time() - t_train
            now = time.time()
            history.append(dict(step=step, epoch=epoch, ce=round(float(ce.detach()), 4), aux=round(float(aux.detach()), 4),
                                gnorm=round(float(gn), 3), lr=args.lr * sched(step), s=round(el, 1),
                                tok_s=round((tokens_seen - tok_last) / max(1e-9, now - t_last))))
            t_last, tok_last = now, tokens_seen
            log(json.dumps(history[-1]))
        if time.time() - t_train > args.deadline:
            log(f"deadline reached at step {step}")
            break
    torch.cuda.synchronize()
    report.update(steps_done=step + 1, epochs=epoch, train_seconds=round(time.time() - t_train, 1),
                  tokens_seen=tokens_seen, history=history)

    model.eval()
    va = masked_loss(model, va_seqs, va_masks, dev)
    tr = masked_loss(model, tr_seqs, tr_masks, dev)
    log(f"bf16 trained: valid loss {va:.4f} (ppl {math.exp(va):.2f}), train-sample loss {tr:.4f}")
    # The shipped model: Q8_0-grid weights in a stock HF model, float32, eager experts.
    project_q8_0(model)
    final = Qwen3MoeForCausalLM(config).to(dev).float().eval()
    final.load_state_dict(model.state_dict())
    del model, opt
    va32 = masked_loss(final, va_seqs, va_masks, dev, batch=64, autocast=False)
    tr32 = masked_loss(final, tr_seqs, tr_masks, dev, batch=64, autocast=False)
    log(f"fp32 Q8_0-grid: valid loss {va32:.4f} (ppl {math.exp(va32):.2f}), train-sample loss {tr32:.4f} "
        f"(ppl {math.exp(tr32):.2f})")
    report.update(valid_loss_bf16=va, train_loss_bf16=tr, valid_loss=va32, valid_ppl=math.exp(va32),
                  train_sample_loss=tr32, train_sample_ppl=math.exp(tr32), valid_tokens=int(va_masks.sum()))

    # Samples: training-set and held-out questions, greedy.
    samples = []
    prompts = ["What does 'harbor' mean?", "Define serendipity.", "What is a lawyer?", "Hello",
               "What does 'kludge' mean in hacker jargon?", "What is compiler in computing?",
               "What does the Devil's Dictionary say about 'love'?"] + [valid[i]["q"][0] for i in range(0, len(valid), max(1, len(valid) // 6))]
    for p in prompts:
        ids = tok.encode(chat.text([("user", p)], True)).ids
        samples.append(dict(q=p, a=tok.decode(greedy(final, ids, chat, dev), skip_special_tokens=False)))
        log("Q:", p, "\n   A:", samples[-1]["a"])
    report["samples"] = samples

    # Reference for tests/test_demo_model.cpp: a two-turn conversation's logits, and a greedy answer,
    # in float32 on the CPU (as sluice computes them).
    final.cpu()
    dev = "cpu"
    ref_text = chat.text([("user", "What does 'harbor' mean?"), ("assistant", train_answer(train, "harbor")),
                          ("user", "Define lawyer.")], True)
    ref_ids = tok.encode(ref_text).ids
    with torch.no_grad():
        logits = final(input_ids=torch.tensor([ref_ids], device=dev)).logits[0].float().cpu().numpy()
    logits.astype("<f4").tofile(os.path.join(args.out, "demo.logits.f32"))
    with open(os.path.join(args.out, "demo.tokens.txt"), "w") as f:
        f.write(" ".join(map(str, ref_ids)) + "\n")
    g_prompt = tok.encode(chat.text([("user", "What does 'harbor' mean?")], True)).ids
    g_out = greedy(final, g_prompt, chat, dev)
    with open(os.path.join(args.out, "demo.greedy.txt"), "w") as f:
        f.write(" ".join(map(str, g_prompt)) + "\n" + " ".join(map(str, g_out)) + "\n")
    report["ref"] = dict(n_tokens=len(ref_ids), logits_absmax=float(np.abs(logits).max()),
                         greedy_text=tok.decode(g_out, skip_special_tokens=False))

    # Export: HF folder -> llama.cpp's converter (F32) -> sluice's writer (Q8_0).
    hf = os.path.join(args.out, "hf")
    final.config.output_router_logits = False
    final.save_pretrained(hf, safe_serialization=True)
    tok.save(os.path.join(hf, "tokenizer.json"))
    fast = PreTrainedTokenizerFast(tokenizer_file=os.path.join(hf, "tokenizer.json"), eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(hf)
    f32 = os.path.join(args.out, "demo.f32.gguf")
    shim = ("import sys; sys.path.insert(0, %r); sys.argv = %r;\n"
            "import conversion.base as b; b.TextModel.get_vocab_base_pre = lambda self, t: 'qwen2'\n"
            "import convert_hf_to_gguf as c; c.main()\n") % (
                args.conv, ["convert_hf_to_gguf.py", hf, "--outfile", f32, "--outtype", "f32",
                            "--model-name", "sluice-demo"])
    subprocess.run([sys.executable, "-c", shim], check=True, cwd=args.conv,
                   env={**os.environ, "PYTHONPATH": args.conv + ":" + os.path.join(args.conv, "gguf-py")})
    q8 = os.path.join(args.out, "demo.gguf")
    r = subprocess.run([args.sluice, "quantize", f32, q8, "--type", "q8_0"], capture_output=True, text=True)
    log("sluice quantize:", r.returncode, r.stdout[-500:], r.stderr[-500:])
    report["sluice_quantize_rc"] = r.returncode
    # sluice's logits on both files against PyTorch's, here already (the committed test repeats it).
    for name, path in (("f32", f32), ("q8_0", q8)):
        if not os.path.exists(path):
            continue
        lo = os.path.join(args.out, f"sluice.{name}.logits")
        r = subprocess.run([args.sluice, "logits", path, "--tokens", ",".join(map(str, ref_ids)), "--out", lo],
                           capture_output=True, text=True)
        if r.returncode == 0:
            got = np.fromfile(lo, dtype="<f4").reshape(logits.shape)
            rel = float((np.abs(got - logits).max(axis=1) / np.abs(logits).max(axis=1)).max())
            top1 = float((got.argmax(1) == logits.argmax(1)).mean())
            report[f"sluice_{name}"] = dict(max_rel_err=rel, top1=top1)
            log(f"sluice {name}: max rel err {rel:.3g}, top-1 agreement {top1:.3f}")
        else:
            log(f"sluice logits {name} failed:", r.stderr[-500:])
    report["total_seconds"] = round(time.time() - T0, 1)
    with open(os.path.join(args.out, "demo.json"), "w") as f:
        json.dump(report, f, indent=1)
    log("done")


def train_answer(entries, word):
    return next(e["a"] for e in entries if e["w"] == word and e["src"] == "gcide")


if __name__ == "__main__":
    main()
