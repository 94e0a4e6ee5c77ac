#!/usr/bin/env python3
"""Debian's dictd dictionaries -> short (question, answer) pairs for the demo model (stdlib only).

Reads /usr/share/dictd/{gcide,jargon,devil,foldoc}.{index,dict.dz} (apt-get install dict-gcide
dict-jargon dict-devil dict-foldoc; sources and licences in tools/demo/DATA_LICENSES.md), keeps one short
definition per headword (the first sense that is not obsolete or rare, cut to a sentence or two) and
writes gzipped JSON lines, one entry per headword:
  {"w": "harbor", "src": "gcide", "q": ["What does 'harbor' mean?", ...], "a": "Harbor (noun): ..."}
The training script picks one of the "q" phrasings per use. Headwords are split into train/valid by a
hash of the word, so no headword's phrasings leak across the split.

usage: dict_to_chat.py OUT_DIR   (writes OUT_DIR/train.jsonl.gz, OUT_DIR/valid.jsonl.gz, OUT_DIR/stats.json)
"""
import collections
import gzip
import hashlib
import json
import os
import re
import sys

DICTD = "/usr/share/dictd"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
VALID_PERCENT = 2
MAX_ANSWER = 240  # characters; the model is small, short answers keep it coherent


def b64(s):
    n = 0
    for c in s:
        n = n * 64 + B64.index(c)
    return n


def read_dictd(name):
    """Unique entry texts of one dictd database, in index order."""
    with gzip.open(os.path.join(DICTD, name + ".dict.dz")) as f:
        data = f.read()
    seen, out = set(), []
    with open(os.path.join(DICTD, name + ".index"), encoding="utf-8") as f:
        for line in f:
            word, off, size = line.rstrip("\n").split("\t")[:3]
            key = (b64(off), b64(size))
            if word.startswith("00-database") or key in seen:
                continue
            seen.add(key)
            out.append(data[key[0]:key[0] + key[1]].decode("utf-8", "replace"))
    return out


# ---------------------------------------------------------------------------------------------------
# Text cleaning shared by the dictionaries

ACCENT = re.compile(r"\[([\"'`^~,]?)([A-Za-z]{1,2})([\"'`^~]?)\]")  # gcide's [e'], ["o], [ae] codes
WORD = re.compile(r"[a-z]+")


def strip_brackets(s, open_="[", close="]"):
    """Removes balanced bracket groups (etymologies, source tags, editorial notes)."""
    out, depth = [], 0
    for c in s:
        if c == open_:
            depth += 1
        elif c == close and depth:
            depth -= 1
        elif not depth:
            out.append(c)
    return "".join(out)


def clean(s):
    s = ACCENT.sub(lambda m: m.group(2), s)
    s = strip_brackets(s)
    s = s.replace("{", "").replace("}", "").replace("\t", " ")
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\s+([,;:.])", r"\1", s)
    return s


def shorten(s):
    """First sentence (two if the first is short), at most MAX_ANSWER characters."""
    sentences = re.split(r"(?<=[a-z0-9)][.!?]) (?=[A-Z(])", s)
    out = sentences[0]
    if len(out) < 60 and len(sentences) > 1 and len(out) + len(sentences[1]) < MAX_ANSWER:
        out += " " + sentences[1]
    if len(out) > MAX_ANSWER:
        cut = max(out.rfind(";", 0, MAX_ANSWER), out.rfind(",", 0, MAX_ANSWER))
        out = out[:cut if cut > 40 else MAX_ANSWER].rstrip(" ,;:")
        out = re.sub(r"[;,]?\s*\b(as|especially|particularly|esp\.|e\.g\.|i\.e\.)$", "", out)
    out = out.rstrip(" ,;:")
    if out and out[-1] not in ".!?":
        out += "."
    return out[0].upper() + out[1:] if out else out


def first_paragraph(s):
    return re.split(r"\n\s*\n", s.strip(), maxsplit=1)[0]


def usable(defn):
    return len(defn) >= 12 and not re.match(r"(See|Same as|Alt\.|Variant|Obs\.|Plural of|pl\. of)\b", defn)


# ---------------------------------------------------------------------------------------------------
# GCIDE (Webster's 1913 + additions)

POS = [("v. t.", "verb"), ("v. i.", "verb"), ("v.", "verb"), ("n. pl.", "plural noun"), ("n.", "noun"),
       ("a.", "adjective"), ("adj.", "adjective"), ("adv.", "adverb"), ("prep.", "preposition"),
       ("conj.", "conjunction"), ("interj.", "interjection"), ("pron.", "pronoun"), ("p. p.", "past participle")]
SOURCE_TAG = re.compile(r"\n\s*\[[^\]\n]*(Webster|WordNet|PJC|Century|RN|\+)[^\]\n]*\]")
SENSE_SPLIT = re.compile(r"\n\s+\d+\. ")
DOMAIN = re.compile(r"^\(([^)]{1,40})\)\s*")
NOT_CURRENT = re.compile(r"\[(Obs|R|Archaic|Colloq|Prov|Scot|Dial|Slang|Cant|Local|Poetic)[^\]]*\]")


def parse_gcide(block):
    m = re.match(r"([A-Za-z][A-Za-z' -]*?) \\[^\\]*\\(.*)", ACCENT.sub(lambda m: m.group(2), block), re.S)
    if not m:
        return None
    word, rest = m.group(1).strip(), m.group(2)
    rest = SOURCE_TAG.sub("\n", rest)
    # Header: optional (pronunciation), the part of speech, then [etymology] groups and a (domain).
    rest = rest[re.match(r"\s*(\([^)]*\))?,?\s*", rest).end():]
    pos = None
    for abbr, name in POS:
        if rest.startswith(abbr):
            pos, rest = name, rest[len(abbr):]
            break
    if pos is None:
        return None
    while True:
        rest = rest.lstrip(" \n")
        if rest.startswith("["):
            depth = 0
            for i, c in enumerate(rest):
                depth += (c == "[") - (c == "]")
                if depth == 0:
                    break
            rest = rest[i + 1:]
        elif re.match(r"\([^)\n]{1,40}\)", rest):
            rest = rest[rest.index(")") + 1:]
        else:
            break
    senses = SENSE_SPLIT.split("\n   " + rest)
    senses = senses[1:] if len(senses) > 1 else [rest]
    for s in senses:
        para = first_paragraph(s)
        if NOT_CURRENT.search(para):
            continue
        para = re.sub(r'\s"[^"]*"\s*(--\S.*)?$', "", para.strip(), flags=re.S)  # quoted example
        para = re.sub(r"\s--(?=\S).*$", "", para, flags=re.S)  # "--Author." citation
        text = DOMAIN.sub("", clean(para))
        text = re.sub(r"^;?\s*pl\. [^.]*\.\s*", "", text)  # "; pl. Diaries." left from the header
        text = DOMAIN.sub("", text)
        text = re.sub(r"^\([a-z]\) ", "", text)
        text = re.sub(r" Specifically: .*$", "", text)
        text = re.sub(r"\s*\b(See|Cf\.|Compare) [^.]*\.?$", "", text)
        if usable(text):
            return word, pos, text
    return None


# ---------------------------------------------------------------------------------------------------
# Jargon File, Devil's Dictionary, FOLDOC

def parse_jargon(block):
    lines = block.split("\n")
    word = lines[0].strip()
    body = "\n".join(lines[1:])
    body = re.sub(r"^\s*(n|v|adj|adv|vt|vi|interj|pron|prep|conj)\.(, [a-z.]+)*\s*\n", "\n", body)
    senses = SENSE_SPLIT.split("\n" + body)
    text = None
    for s in (senses[1:] if len(senses) > 1 else senses):
        para = first_paragraph(strip_brackets(s))
        para = re.sub(r"^/[^/]*/\s*", "", para.strip())
        para = re.sub(r"^((n|v|adj|adv|vt|vi|interj)\.,?\s*)+", "", para)
        t = clean(para)
        if usable(t):
            text = t
            break
    return (word, text) if text else None


def parse_devil(block):
    m = re.match(r"([A-Z][A-Z' -]*[A-Z]), ([a-z. ]+?)\s{1,3}(\S.*)", block, re.S)
    if not m:
        return None
    text = clean(first_paragraph(m.group(3)))
    return (m.group(1).capitalize(), text) if usable(text) else None


def parse_foldoc(block):
    lines = block.split("\n")
    word = lines[0].strip()
    body = "\n".join(lines[1:]).strip()
    paras = re.split(r"\n\s*\n", body)
    for para in paras:
        if not para.startswith(" ") and "\n" not in para:  # a second headword line (an abbreviation)
            continue
        t = re.sub(r"\s*<[^>]*>\s*", " ", clean(para)).strip()
        while True:  # leading pronunciations, (notes), "1." and stray punctuation
            u = re.sub(r"^([.,;:]\s*|/[^/]*/\s*|\([^)]*\)\s*|1\.\s+)", "", t)
            if u == t:
                break
            t = u
        if re.match(r"\d+\. ", t):  # a later sense: the first one is missing
            return None
        if re.fullmatch(r"\(\d{4}-\d\d-\d\d\)", t):
            continue
        return (word, t) if usable(t) and not t.startswith("{") else None
    return None


# ---------------------------------------------------------------------------------------------------
# Questions

def a_or_an(w):
    return "an" if w[0].lower() in "aeiou" else "a"


def gcide_questions(w, pos):
    q = [f"What does '{w}' mean?", f"What does {w} mean?", f"Define {w}.", f"Define '{w}'.",
         f"What is the meaning of '{w}'?", f"What is the definition of {w}?", f"{w}?",
         f"Can you tell me what '{w}' means?", f"Meaning of {w}?"]
    if pos == "noun":
        q += [f"What is {a_or_an(w)} {w}?", f"What's {a_or_an(w)} {w}?"]
    if pos == "verb":
        q += [f"What does it mean to {w}?"]
    return q


def jargon_questions(w):
    return [f"What does '{w}' mean in hacker jargon?", f"What is {w} in hacker slang?",
            f"In the Jargon File, what does '{w}' mean?", f"Hacker jargon: {w}?"]


def devil_questions(w):
    lw = w.lower()
    return [f"What does the Devil's Dictionary say about '{lw}'?", f"Define {lw} the way Ambrose Bierce would.",
            f"What is {a_or_an(lw)} {lw}, cynically speaking?", f"Give me a cynical definition of {lw}."]


def foldoc_questions(w, generic):
    q = [f"What is {w} in computing?", f"In computing, what does '{w}' mean?", f"What does {w} mean in computing?"]
    if generic:
        q += [f"What is {w}?", f"What does '{w}' mean?", f"Define {w}."]
    return q


# Original text written for the demo (greetings and who-am-I turns), so a newcomer's first "hi" gets a
# sensible answer.
INTRO = ("Hello! I am sluice's demo model, a tiny mixture-of-experts trained on free dictionaries. "
         "Ask me what a word means, for example: What does 'harbor' mean?")
ABOUT = ("I am a small demo model trained by the sluice project on free dictionaries: Webster's 1913 "
         "(GCIDE), the Jargon File, FOLDOC and The Devil's Dictionary. I can define words; I know little else.")
SMALL_TALK = [
    (["Hello", "Hello!", "Hi", "Hi!", "Hi there", "Hey", "Hey there!", "Good morning", "Good evening",
      "Greetings"], INTRO),
    (["Who are you?", "What are you?", "What can you do?", "What do you know?", "Tell me about yourself.",
      "What is this?", "Help"], ABOUT),
    (["Thanks", "Thank you!", "Thanks a lot.", "Great, thanks."], "You're welcome! Ask me about another word."),
    (["Bye", "Goodbye!", "See you later."], "Goodbye! Come back when a word puzzles you."),
]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    entries = {}  # (source, word) -> entry

    gcide = [p for p in map(parse_gcide, read_dictd("gcide")) if p]
    # Keep the words the dictionary itself uses in definitions (a frequency list from the corpus at
    # hand): Webster's is mostly rare species, obsolete and technical words, which a 20M-parameter
    # model cannot hold; the common ones make a better demo.
    freq = collections.Counter(w for _, _, d in gcide for w in WORD.findall(d.lower()))
    n_gcide = 0
    for word, pos, defn in gcide:
        w = word.lower()
        if not re.fullmatch(r"[a-z]{2,}(-[a-z]+)?", w) or freq[w] < 2 or ("gcide", w) in entries:
            continue
        entries[("gcide", w)] = dict(w=w, src="gcide", q=gcide_questions(w, pos),
                                     a=shorten(f"{w.capitalize()} ({pos}): {defn}"))
        n_gcide += 1
        # A second part of speech for the same word, asked for explicitly.
    seen_pos = set()
    for word, pos, defn in gcide:
        w = word.lower()
        e = entries.get(("gcide", w))
        if not e or e["a"].startswith(f"{w.capitalize()} ({pos})") or (w, pos) in seen_pos:
            continue
        seen_pos.add((w, pos))
        entries[("gcide-" + pos, w)] = dict(w=w, src="gcide", q=[f"What does '{w}' mean as {a_or_an(pos)} {pos}?",
                                                                   f"What does {w} mean as {a_or_an(pos)} {pos}?"],
                                            a=shorten(f"{w.capitalize()} ({pos}): {defn}"))

    for word, defn in filter(None, map(parse_jargon, read_dictd("jargon"))):
        entries[("jargon", word.lower())] = dict(w=word, src="jargon", q=jargon_questions(word),
                                                 a=shorten(f"{word[0].upper() + word[1:]} (hacker jargon): {defn}"))
    for word, defn in filter(None, map(parse_devil, read_dictd("devil"))):
        entries[("devil", word.lower())] = dict(w=word, src="devil", q=devil_questions(word),
                                                a=shorten(f"{word} (The Devil's Dictionary): {defn}"))
    for word, defn in filter(None, map(parse_foldoc, read_dictd("foldoc"))):
        if not re.fullmatch(r"[A-Za-z][\w+#.\- ]{0,30}", word):
            continue
        generic = ("gcide", word.lower()) not in entries
        entries[("foldoc", word.lower())] = dict(w=word, src="foldoc", q=foldoc_questions(word, generic),
                                                 a=shorten(f"{word[0].upper() + word[1:]} (computing): {defn}"))

    train, valid = [], []
    for (src, w), e in sorted(entries.items()):
        h = int(hashlib.sha1(w.lower().encode()).hexdigest()[:8], 16)
        (valid if h % 100 < VALID_PERCENT else train).append(e)
    for qs, a in SMALL_TALK:
        train.append(dict(w="", src="intro", q=qs, a=a))

    for name, rows in (("train", train), ("valid", valid)):
        with gzip.open(os.path.join(out, name + ".jsonl.gz"), "wt", encoding="utf-8", compresslevel=9) as f:
            for e in rows:
                f.write(json.dumps(e, ensure_ascii=False) + "\n")
    stats = collections.Counter(e["src"] for e in train)
    stats = {"train": len(train), "valid": len(valid), "by_source": dict(stats), "gcide_headwords": n_gcide,
             "answer_chars_mean": sum(len(e["a"]) for e in train) / len(train)}
    with open(os.path.join(out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
