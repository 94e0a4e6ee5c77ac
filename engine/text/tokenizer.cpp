// Byte-level BPE over token ids: a word starts as one symbol per byte and the lowest-ranked adjacent
// pair (leftmost on ties, as HF's BPE) is merged until no pair has a rank.
#include "engine/text/tokenizer.h"

#include <algorithm>
#include <functional>
#include <iterator>

#include "engine/error.h"
#include "engine/text/unicode.h"

namespace sluice::text {

namespace {
// Bytes that print keep their code point; the other 68 take 256, 257, ... in byte order.
struct ByteMap {
    uint32_t to_cp[256];
    int16_t from_cp[256 + 68];
    ByteMap() {
        uint32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            to_cp[b] = printable ? (uint32_t)b : next++;
        }
        std::fill(std::begin(from_cp), std::end(from_cp), -1);
        for (int b = 0; b < 256; ++b) from_cp[to_cp[b]] = (int16_t)b;
    }
};
const ByteMap kBytes;

// "Ġthe" -> " the"; a code point outside the map is kept as its UTF-8.
std::string unbyte(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        size_t start = i;
        int32_t cp = next_cp(s, i);
        int b = cp < 0 ? -1 : byte_from_cp((uint32_t)cp);
        if (b >= 0) out += (char)b;
        else out.append(s.substr(start, i - start));
    }
    return out;
}

bool is_added(int32_t t) { return t == (int32_t)TokenType::Control || t == (int32_t)TokenType::UserDefined; }
}  // namespace

uint32_t byte_to_cp(uint8_t b) { return kBytes.to_cp[b]; }

int byte_from_cp(uint32_t cp) { return cp < 256 + 68 ? kBytes.from_cp[cp] : -1; }

Tokenizer::Tokenizer(Vocab v) : vocab_(std::move(v)), pre_(vocab_.pre) {
    if (vocab_.model != "gpt2")
        throw Error("tokenizer model '" + vocab_.model + "' is not supported; sluice reads byte-level BPE ('gpt2')");
    const size_t n = vocab_.tokens.size();
    if (vocab_.token_type.size() != n)
        throw Error("vocab has " + std::to_string(n) + " tokens but " + std::to_string(vocab_.token_type.size()) + " token types");

    bytes_.resize(n);
    by_bytes_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        const int32_t t = vocab_.token_type[i];
        if (t == (int32_t)TokenType::Normal || t == (int32_t)TokenType::Undefined || t == (int32_t)TokenType::Byte) {
            bytes_[i] = unbyte(vocab_.tokens[i]);
            by_bytes_.emplace(bytes_[i], (int32_t)i);  // first wins on a duplicate
        } else {
            bytes_[i] = vocab_.tokens[i];  // added tokens are stored as raw text
        }
        if (is_added(t) && !bytes_[i].empty()) {
            specials_[(uint8_t)bytes_[i][0]].emplace_back(bytes_[i], (int32_t)i);
            special_ids_.emplace(bytes_[i], (int32_t)i);
        }
    }
    for (auto& bucket : specials_)
        std::stable_sort(bucket.begin(), bucket.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });

    for (int b = 0; b < 256; ++b) {
        auto it = by_bytes_.find(std::string(1, (char)b));
        if (it == by_bytes_.end()) {
            std::string cp;
            append_utf8(cp, byte_to_cp((uint8_t)b));
            throw Error("vocab has no token for byte 0x" + std::string(1, "0123456789ABCDEF"[b >> 4]) +
                        "0123456789ABCDEF"[b & 15] + " ('" + cp + "'); not a byte-level BPE vocabulary");
        }
        byte_id_[b] = it->second;
    }

    merges_.reserve(vocab_.merges.size());
    for (size_t r = 0; r < vocab_.merges.size(); ++r) {
        const std::string& m = vocab_.merges[r];
        size_t sp = m.find(' ', 1);
        if (sp == std::string::npos) throw Error("merge " + std::to_string(r) + " '" + m + "' has no space");
        std::string a = unbyte(std::string_view(m).substr(0, sp)), b = unbyte(std::string_view(m).substr(sp + 1));
        auto ia = by_bytes_.find(a), ib = by_bytes_.find(b), iab = by_bytes_.find(a + b);
        if (ia == by_bytes_.end() || ib == by_bytes_.end() || iab == by_bytes_.end()) continue;  // unusable merge
        merges_.emplace((uint64_t)(uint32_t)ia->second << 32 | (uint32_t)ib->second, Merge{(int32_t)r, iab->second});
    }
}

int32_t Tokenizer::find(std::string_view text) const {
    std::string s(text);
    if (auto it = special_ids_.find(s); it != special_ids_.end()) return it->second;
    if (auto it = by_bytes_.find(s); it != by_bytes_.end()) return it->second;
    return -1;
}

void Tokenizer::encode_piece(std::string_view w, std::vector<int32_t>& out) const {
    if (w.size() == 1) { out.push_back(byte_id_[(uint8_t)w[0]]); return; }
    if (pre_.spec().ignore_merges) {
        if (auto it = by_bytes_.find(std::string(w)); it != by_bytes_.end()) { out.push_back(it->second); return; }
    }
    struct Sym { int32_t id, prev, next; };
    struct Cand {
        int32_t rank, left, lid, rid;
        bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    thread_local std::vector<Sym> sym;
    thread_local std::vector<Cand> heap;  // min-heap on (rank, left)
    const int32_t n = (int32_t)w.size();
    sym.resize(n);
    for (int32_t i = 0; i < n; ++i) sym[i] = {byte_id_[(uint8_t)w[i]], i - 1, i + 1 < n ? i + 1 : -1};

    heap.clear();
    auto consider = [&](int32_t l) {
        if (l < 0) return;
        int32_t r = sym[l].next;
        if (r < 0) return;
        auto it = merges_.find((uint64_t)(uint32_t)sym[l].id << 32 | (uint32_t)sym[r].id);
        if (it == merges_.end()) return;
        heap.push_back({it->second.rank, l, sym[l].id, sym[r].id});
        std::push_heap(heap.begin(), heap.end(), std::greater<Cand>());
    };
    for (int32_t i = 0; i + 1 < n; ++i) consider(i);

    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), std::greater<Cand>());
        Cand c = heap.back();
        heap.pop_back();
        // Skip candidates made stale by an earlier merge (either side changed or was absorbed).
        if (sym[c.left].id != c.lid) continue;
        int32_t r = sym[c.left].next;
        if (r < 0 || sym[r].id != c.rid) continue;
        sym[c.left].id = merges_.find((uint64_t)(uint32_t)c.lid << 32 | (uint32_t)c.rid)->second.id;
        sym[c.left].next = sym[r].next;
        if (sym[r].next >= 0) sym[sym[r].next].prev = c.left;
        sym[r].id = -1;
        consider(sym[c.left].prev);
        consider(c.left);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

void Tokenizer::encode_text(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    std::string normalized;
    if (vocab_.nfc) {
        normalized = nfc(text);
        text = normalized;
    }
    thread_local std::vector<std::string_view> pieces;
    pieces.clear();
    pre_.split(text, pieces);
    for (std::string_view p : pieces) encode_piece(p, out);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
    std::string clean;
    if (!utf8_valid(text)) {
        clean = utf8_sanitize(text);
        text = clean;
    }
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    size_t start = 0;
    if (parse_special) {
        for (size_t i = 0; i < text.size();) {
            const auto& bucket = specials_[(uint8_t)text[i]];
            const std::pair<std::string, int32_t>* hit = nullptr;
            for (const auto& cand : bucket)
                if (text.compare(i, cand.first.size(), cand.first) == 0) { hit = &cand; break; }
            if (!hit) { ++i; continue; }
            encode_text(text.substr(start, i - start), out);
            out.push_back(hit->second);
            i += hit->first.size();
            start = i;
        }
    }
    encode_text(text.substr(start), out);
    return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool special) const {
    std::string out;
    for (int32_t id : ids) {
        if (id < 0 || id >= n_tokens()) throw Error("token id " + std::to_string(id) + " is out of range (vocab has " + std::to_string(n_tokens()) + ")");
        TokenType t = type(id);
        if (!special && (t == TokenType::Control || t == TokenType::Unused || t == TokenType::Unknown)) continue;
        out += bytes_[id];
    }
    return out;
}

std::string StreamDecoder::push(int32_t id) {
    held_ += tok_.decode(std::span<const int32_t>(&id, 1), special_);
    size_t n = utf8_complete_prefix(held_);
    std::string out = utf8_sanitize(std::string_view(held_).substr(0, n));
    held_.erase(0, n);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out = utf8_sanitize(held_);
    held_.clear();
    return out;
}

}  // namespace sluice::text
