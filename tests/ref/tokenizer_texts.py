#!/usr/bin/env python3
# Writes tests/fixtures/tokenizer/texts.jsonl: the texts whose Qwen3 token ids tests compare with HF.
# Run from the repository root: python3 tests/ref/tokenizer_texts.py
import json
import os

T = []
add = T.append

# Prose
add("Hello world")
add("The quick brown fox jumps over the lazy dog.")
add("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity...")
add("Mixture-of-Experts models activate only a few experts per token; the rest stay on disk (or in the page cache).")
add("She said: \"Don't panic!\" -- and then -- well... (it's complicated) [see §3.2] {ok}?!")
# Whitespace
add("")
add(" ")
add(" Hello")
add("a  b   c    d     e")
add("trailing spaces   ")
add("   leading and trailing   ")
add("\n")
add("\n\n\n")
add("line one\r\nline two\r\n\r\nline four\r\n")
add("tabs\tbetween\t\twords\t")
add("\t\t\tindented with tabs\n\t\tand less\n")
add(" \n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n")
add("mixed \t \r\n whitespace \u00a0nbsp\u3000ideographic\u2028ls\u2029ps \u0085nel end")
# The converter's pre-tokenizer fingerprint text
add("\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\U0001F680 (normal) \U0001F636\u200d\U0001F32B\ufe0f (multiple emojis "
    "concatenated) \u2705 \U0001F999\U0001F999 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "\u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1\u179f\u17a2\u17b6\u1785\U0001F601 ?\u6211\u60f3\u5728apple"
    "\u5de5\u4f5c1314151\u5929\uff5e ------======= \u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433\u0430\u0440"
    "\u0441\u043a\u0438 ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure "
    "I'll make it, 'D you like some tea? We'Ve a'lL")
# Code
add("def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n\nprint([fib(i) for i in range(10)])\n")
add("#include <stdio.h>\n\nint main(void) {\n\tfor (int i = 0; i < 10; ++i) {\n\t\tprintf(\"%d\\n\", i);\n\t}\n\treturn 0;\n}\n")
add("fn main() {\n    let v: Vec<u32> = (1..=5).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n")
add("const add = (a, b) => a + b;\nexport default function App() {\n  return <div className=\"app\">{add(1, 2)}</div>;\n}\n")
add("package main\n\nimport \"fmt\"\n\nfunc main() {\n\tch := make(chan int, 3)\n\tch <- 42\n\tfmt.Println(<-ch)\n}\n")
add("SELECT id, name FROM users WHERE age >= 18 AND name LIKE 'A%' ORDER BY id DESC LIMIT 10;")
add("#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do\n  wc -l \"$f\" | awk '{print $1}'\ndone\n")
add("{\"name\": \"sluice\", \"version\": \"0.1.0\", \"deps\": [\"pcre2\", \"gtest\"], \"nested\": {\"a\": null, \"b\": true}}")
add("<!DOCTYPE html>\n<html>\n  <body>\n    <p class=\"x\">Hi &amp; bye</p>\n  </body>\n</html>\n")
add("all: build\n\nbuild:\n\tcmake -S . -B build\n\tninja -C build\n")
add("    x = [1,2,3]    \n\n        y = {'k': v for k, v in d.items()}  # comment   \n")
add("template <typename T>\nstd::vector<T> f(const T& x) noexcept { return {x, x}; }  // C++20\n")
# Numbers
add("1 12 123 1234 12345 123456 1234567 12345678 123456789 1234567890")
add("3.14159265358979323846264338327950288419716939937510")
add("1,000,000 and 2.5e-10 and -42 and +7 and 0x1F and 0b1010 and 1_000_000")
add("Dates: 2026-09-15, 15/09/2026, 09.15.26; times: 23:59:59.999")
add("Phone +1 (555) 123-4567; IPv4 192.168.0.1; version v1.2.3-rc.4")
add("\uff11\uff12\uff13 \u0661\u0662\u0663 \u0967\u0968\u0969 \u00bd \u2153 \u2460\u2461 \u2167")
# CJK
add("\u6211\u559c\u6b22\u5728\u5317\u4eac\u7684\u79cb\u5929\u559d\u70ed\u8336\u3002\u4eba\u5de5\u667a\u80fd\u6b63\u5728\u6539\u53d8\u4e16\u754c\uff01")
add("\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3067\u3059\u3002\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3001\u305d\u3057\u3066\u6f22\u5b57\u3002")
add("\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4. \uc548\ub155\ud558\uc138\uc694, \ubc18\uac11\uc2b5\ub2c8\ub2e4!")
add("\u300c\u5f15\u7528\u300d\u3010\u62ec\u5f27\u3011\uff08\u5168\u89d2\uff09\uff0c\u3002\uff01\uff1f\uff1a\uff1b")
add("Mixed \u4e2d\u6587 and English \u548c\u6570\u5b57123\u3002")
# Emoji
add("\U0001F680\U0001F525\U0001F4AF")
add("family: \U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 rainbow: \U0001F3F3\ufe0f\u200d\U0001F308")
add("flags \U0001F1EF\U0001F1F5\U0001F1FA\U0001F1F8\U0001F1E9\U0001F1EA thumbs \U0001F44D\U0001F3FD keycap 1\ufe0f\u20e3")
add("\U0001F9D1\u200d\U0001F4BB coding at 3am \u2615\ufe0f\u2764\ufe0f")
# Accents, combining, NFC-sensitive forms
add("caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u00e5ngstr\u00f6m")
add("cafe\u0301 nai\u0308ve re\u0301sume\u0301")
add("a\u0301\u0302\u0323 e\u0327\u0301 o\u0308\u0304 s\u0323\u0307 q\u0307\u0323")
add("Ti\u00ea\u0301ng Vi\u00ea\u0323t c\u00f3 d\u1ea5u")
add("\u212b \u2126 \u212a \uf900 \u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af")
add("Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dalgo")
# Scripts
add("\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645\u060c \u0647\u0630\u0627 \u0646\u0635 \u0639\u0631\u0628\u064a.")
add("\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd! \u05d6\u05d4 \u05d8\u05e7\u05e1\u05d8 \u05d1\u05e2\u05d1\u05e8\u05d9\u05ea.")
add("\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e, \u092f\u0939 \u0939\u093f\u0902\u0926\u0940 \u0939\u0948\u0964")
add("\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0e44\u0e21\u0e48\u0e21\u0e35\u0e0a\u0e48\u0e2d\u0e07\u0e27\u0e48\u0e32\u0e07")
add("\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03ba\u03b1\u03b9 \u0420\u0443\u0441\u0441\u043a\u0438\u0439.")
# Contractions
add("I'm sure you're right, he's there, we've done it, they'll come, I'd go, don't stop.")
add("HE'S THEY'LL WE'VE I'M YOU'RE I'D 'LL 'Ve 'Re 'S 'T 'M 'D")
add("rock'n'roll o'clock ma'am y'all' 'quoted' ''s '\u017f")
# Special tokens in text
add("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
add("<|endoftext|>")
add("<think>\nLet me think.\n</think>\n\nThe answer is 4.")
add("partial <|im_start and <|im_end| and <|endoftext| and < think> and <<|im_end|>>")
add("<|im_end|><|im_end|><|endoftext|><|im_start|>")
add("<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>")
# Unusual code points
add("replacement \ufffd zero\u200bwidth joiner\u200dnon\u200cjoiner bom\ufeff soft\u00adhyphen")
add("private use \ue000\uf8ff \U000F0000 \U0010FFFD")
add("controls \x00 \x01 \x07 \x1b[0m \x7f end")
add("math \u2200x\u2208\u211d: x\u00b2 \u2265 0, \u222b\u2080\u00b9 f(x)dx \u2248 \u2211 \u03b1\u1d62")
add("Markdown:\n\n# Title\n\n- item **bold** and `code`\n- [link](https://example.com/a?b=c&d=e#f)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
add("email me@example.org or https://github.com/ggml-org/llama.cpp/blob/master/src/llama-vocab.cpp#L284")

# A long (~5 KB) text mixing everything above.
long = []
i = 0
while sum(len(s.encode()) for s in long) < 5000:
    long.append(T[(i * 7) % len(T)])
    i += 1
add("\n".join(long))

out = os.path.join(os.path.dirname(__file__), "..", "fixtures", "tokenizer", "texts.jsonl")
with open(out, "w", encoding="utf-8") as f:
    for t in T:
        f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
print(f"{len(T)} texts, longest {max(len(t.encode()) for t in T)} bytes")
