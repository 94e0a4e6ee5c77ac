// UTF-8 decoding by Unicode's table of well-formed sequences (3-7), and NFC after UAX #15.
#include "engine/text/unicode.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

namespace sluice::text {

namespace {
#include "engine/text/unicode_nfc_data.inc"

// Hangul syllables decompose algorithmically (UAX #15, "Hangul").
constexpr uint32_t SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
constexpr uint32_t LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

// Lead byte -> sequence length and the allowed range of the second byte.
struct Lead { int n; uint8_t lo, hi; };
Lead lead_info(uint8_t c) {
    if (c < 0x80) return {1, 0, 0};
    if (c >= 0xC2 && c <= 0xDF) return {2, 0x80, 0xBF};
    if (c == 0xE0) return {3, 0xA0, 0xBF};
    if (c == 0xED) return {3, 0x80, 0x9F};  // no surrogates
    if (c >= 0xE1 && c <= 0xEF) return {3, 0x80, 0xBF};
    if (c == 0xF0) return {4, 0x90, 0xBF};
    if (c >= 0xF1 && c <= 0xF3) return {4, 0x80, 0xBF};
    if (c == 0xF4) return {4, 0x80, 0x8F};  // <= U+10FFFF
    return {0, 0, 0};
}

// How many bytes of the sequence at s[i] are a valid prefix (== n when complete).
int valid_prefix(std::string_view s, size_t i, const Lead& L) {
    int k = 1;
    for (; k < L.n && i + k < s.size(); ++k) {
        uint8_t b = (uint8_t)s[i + k];
        bool ok = k == 1 ? (b >= L.lo && b <= L.hi) : (b >= 0x80 && b <= 0xBF);
        if (!ok) break;
    }
    return k;
}

int ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = std::size(kCccRuns);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (kCccRuns[mid][1] < cp) lo = mid + 1; else hi = mid;
    }
    return lo < std::size(kCccRuns) && kCccRuns[lo][0] <= cp ? (int)kCccRuns[lo][2] : 0;
}

const uint32_t* decomp(uint32_t cp) {
    size_t lo = 0, hi = std::size(kDecomp);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((kDecomp[mid][0] & 0x7FFFFFFF) < cp) lo = mid + 1; else hi = mid;
    }
    return lo < std::size(kDecomp) && (kDecomp[lo][0] & 0x7FFFFFFF) == cp ? kDecomp[lo] : nullptr;
}

struct Compositions {
    std::unordered_map<uint64_t, uint32_t> pair;  // (a << 32 | b) -> composite
    std::vector<uint32_t> seconds;                 // sorted: code points that can be a pair's second
    Compositions() {
        for (const auto& d : kDecomp) {
            if (!(d[0] & 0x80000000)) continue;
            pair[(uint64_t)d[1] << 32 | d[2]] = d[0] & 0x7FFFFFFF;
            seconds.push_back(d[2]);
        }
        std::sort(seconds.begin(), seconds.end());
        seconds.erase(std::unique(seconds.begin(), seconds.end()), seconds.end());
    }
};
const Compositions& compositions() {
    static const Compositions c;
    return c;
}

uint32_t compose(uint32_t a, uint32_t b) {
    if (a - LBase < LCount && b - VBase < VCount)
        return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
    if (a - SBase < SCount && (a - SBase) % TCount == 0 && b - TBase - 1 < TCount - 1)
        return a + (b - TBase);
    const auto& m = compositions().pair;
    auto it = m.find((uint64_t)a << 32 | b);
    return it == m.end() ? 0 : it->second;
}

// True when cp can never change under NFC nor change its neighbours.
bool nfc_inert(uint32_t cp) {
    if (cp < 0x300) return true;
    if (cp - SBase < SCount) return true;  // a syllable, unless a T jamo follows (caught below)
    if (cp - VBase < VCount || cp - TBase - 1 < TCount - 1) return false;
    if (ccc(cp) != 0 || decomp(cp)) return false;
    const auto& s = compositions().seconds;
    return !std::binary_search(s.begin(), s.end(), cp);
}

void decompose(uint32_t cp, std::vector<uint32_t>& out) {
    if (cp - SBase < SCount) {
        uint32_t si = cp - SBase;
        out.push_back(LBase + si / NCount);
        out.push_back(VBase + (si % NCount) / TCount);
        if (si % TCount) out.push_back(TBase + si % TCount);
        return;
    }
    if (const uint32_t* d = decomp(cp)) {
        decompose(d[1], out);
        if (d[2]) decompose(d[2], out);
        return;
    }
    out.push_back(cp);
}
}  // namespace

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += (char)cp;
    } else if (cp < 0x800) {
        out += (char)(0xC0 | cp >> 6);
        out += (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += (char)(0xE0 | cp >> 12);
        out += (char)(0x80 | (cp >> 6 & 0x3F));
        out += (char)(0x80 | (cp & 0x3F));
    } else {
        out += (char)(0xF0 | cp >> 18);
        out += (char)(0x80 | (cp >> 12 & 0x3F));
        out += (char)(0x80 | (cp >> 6 & 0x3F));
        out += (char)(0x80 | (cp & 0x3F));
    }
}

int32_t next_cp(std::string_view s, size_t& i) {
    uint8_t c = (uint8_t)s[i];
    Lead L = lead_info(c);
    if (L.n == 1) { ++i; return c; }
    int k = L.n ? valid_prefix(s, i, L) : 1;
    if (L.n == 0 || k < L.n) { i += k; return -1; }
    uint32_t cp = c & (0xFF >> (L.n + 1));
    for (int j = 1; j < L.n; ++j) cp = cp << 6 | ((uint8_t)s[i + j] & 0x3F);
    i += L.n;
    return (int32_t)cp;
}

size_t utf8_complete_prefix(std::string_view s) {
    // Only the last three bytes can start an unfinished sequence.
    size_t n = s.size();
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        size_t i = n - back;
        uint8_t c = (uint8_t)s[i];
        if (c >= 0x80 && c < 0xC0) continue;  // continuation byte: look further back
        Lead L = lead_info(c);
        if (L.n > (int)back && valid_prefix(s, i, L) == (int)back) return i;
        return n;
    }
    return n;
}

std::string utf8_sanitize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        size_t start = i;
        int32_t cp = next_cp(s, i);
        if (cp < 0) out += "\xEF\xBF\xBD";
        else out.append(s.substr(start, i - start));
    }
    return out;
}

bool utf8_valid(std::string_view s) {
    for (size_t i = 0; i < s.size();)
        if (next_cp(s, i) < 0) return false;
    return true;
}

std::string nfc(std::string_view s) {
    std::vector<uint32_t> cps;
    cps.reserve(s.size());
    bool inert = true;
    for (size_t i = 0; i < s.size();) {
        if ((uint8_t)s[i] < 0x80) { cps.push_back((uint8_t)s[i++]); continue; }
        int32_t cp = next_cp(s, i);
        if (cp < 0) cp = 0xFFFD;
        cps.push_back((uint32_t)cp);
        inert = inert && nfc_inert((uint32_t)cp);
    }
    if (inert) return std::string(s);

    std::vector<uint32_t> d;
    d.reserve(cps.size() + 8);
    for (uint32_t cp : cps) decompose(cp, d);
    // Canonical ordering: stable sort of each run of non-starters by combining class.
    for (size_t i = 0; i < d.size();) {
        if (ccc(d[i]) == 0) { ++i; continue; }
        size_t j = i;
        while (j < d.size() && ccc(d[j]) != 0) ++j;
        std::stable_sort(d.begin() + i, d.begin() + j, [](uint32_t a, uint32_t b) { return ccc(a) < ccc(b); });
        i = j;
    }
    // Canonical composition: a mark composes with the last starter unless blocked by a mark of
    // the same or higher class in between.
    std::vector<uint32_t> out;
    out.reserve(d.size());
    size_t starter = 0;
    int last_class = -1;  // -1: no starter yet
    for (uint32_t cp : d) {
        int c = ccc(cp);
        if (!out.empty() && last_class != -1 && (last_class < c || last_class == 0)) {
            // last_class == 0 means the starter is the previous character.
            if (uint32_t comp = compose(out[starter], cp)) {
                out[starter] = comp;
                continue;
            }
        }
        if (c == 0) starter = out.size();
        else if (last_class == -1) { out.push_back(cp); continue; }  // leading marks stay blocked
        last_class = c;
        out.push_back(cp);
    }
    std::string r;
    r.reserve(s.size());
    for (uint32_t cp : out) append_utf8(r, cp);
    return r;
}

}  // namespace sluice::text
