// Pre-tokenizer table and PCRE2 splitting. Patterns are the ones the models' tokenizer.json files
// declare (llama.cpp's llama-vocab.cpp lists the same per `tokenizer.ggml.pre`); PCRE2 runs them as
// written, (?i:...) and lookaheads included, so they need no rewriting except where noted.
#include "engine/text/pretokenize.h"

#include <pcre2.h>

#include "engine/error.h"

namespace sluice::text {

namespace {
// Qwen2/2.5/3: letters glue to one leading non-letter, digits split one by one.
const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen3.5: as qwen2 with combining marks kept inside words.
const char* kQwen35 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Llama 3: digits in groups of up to three.
const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-2's ByteLevel pre-tokenizer (use_regex true).
const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// o200k (gpt-4o, llama4, gpt-oss): case-aware words with trailing contractions.
const char* kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek V3/R1: three passes (digits, CJK runs, then words/punctuation).
const char* kDs3Digits = R"(\p{N}{1,3})";
const char* kDs3Cjk = "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+";
const char* kDs3Words =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
// Kimi K2 (tiktoken, no tokenizer.json): o200k-like with Han runs split out. The original's class
// intersection [...&&[^\p{Han}]] is written as a negative lookahead, which PCRE2 supports.
#define KIMI_UP R"((?:(?!\p{Han})[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]))"
#define KIMI_LO R"((?:(?!\p{Han})[\p{Ll}\p{Lm}\p{Lo}\p{M}]))"
const char* kKimiK2 =
    R"([\p{Han}]+|[^\r\n\p{L}\p{N}]?)" KIMI_UP "*" KIMI_LO R"(+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"([^\r\n\p{L}\p{N}]?)" KIMI_UP "+" KIMI_LO R"(*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
#undef KIMI_UP
#undef KIMI_LO

const std::vector<PreSpec> kTable = {
    {{"qwen2", "deepseek-r1-qwen", "megrez"}, {kQwen2}, {kQwen2}, false, true},
    {{"qwen35"}, {kQwen35}, {kQwen35}, false, true},
    {{"llama-bpe", "llama3", "llama-v3"}, {kLlama3}, {kLlama3}, true, false},
    {{"gpt-2", "gpt2"}, {kGpt2}, {}, false, false},
    {{"gpt-4o", "llama4"}, {kGpt4o}, {kGpt4o}, false, false},
    {{"deepseek-v3"}, {kDs3Digits, kDs3Cjk, kDs3Words}, {kDs3Digits, kDs3Cjk, kDs3Words}, false, false},
    {{"kimi-k2"}, {kKimiK2}, {}, false, false},
};

std::string pcre2_message(int code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(code, buf, sizeof buf);
    return reinterpret_cast<const char*>(buf);
}
}  // namespace

const std::vector<PreSpec>& pre_table() { return kTable; }

const PreSpec* find_pre(std::string_view name) {
    for (const auto& s : kTable)
        for (const auto& n : s.names)
            if (n == name) return &s;
    return nullptr;
}

const PreSpec* find_pre_by_hf(const std::vector<std::string>& patterns) {
    for (const auto& s : kTable)
        if (!s.hf.empty() && s.hf == patterns) return &s;
    return nullptr;
}

struct PreTokenizer::Regex {
    pcre2_code* code = nullptr;
    bool jit = false;
    ~Regex() { pcre2_code_free(code); }
};

PreTokenizer::PreTokenizer(std::string_view pre) : spec_(find_pre(pre)) {
    if (!spec_) {
        std::string known;
        for (const auto& s : kTable) known += (known.empty() ? "" : ", ") + s.names[0];
        throw Error("unknown pre-tokenizer '" + std::string(pre) + "' (tokenizer.ggml.pre); known: " + known);
    }
    for (const auto& pattern : spec_->regexes) {
        auto re = std::make_unique<Regex>();
        int err = 0;
        PCRE2_SIZE off = 0;
        re->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                 PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
        if (!re->code)
            throw Error("pre-tokenizer '" + spec_->names[0] + "': regex does not compile at offset " +
                        std::to_string(off) + ": " + pcre2_message(err));
        // JIT is an optimisation: without it (e.g. a PCRE2 built without JIT) the interpreter runs.
        re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
        re_.push_back(std::move(re));
    }
}

PreTokenizer::~PreTokenizer() = default;

namespace {
// Per-thread scratch: match data and a JIT stack large enough for long whitespace runs.
struct Scratch {
    pcre2_match_data* md = pcre2_match_data_create(8, nullptr);
    pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    pcre2_match_context* mctx = pcre2_match_context_create(nullptr);
    Scratch() { pcre2_jit_stack_assign(mctx, nullptr, stack); }
    ~Scratch() {
        pcre2_match_context_free(mctx);
        pcre2_jit_stack_free(stack);
        pcre2_match_data_free(md);
    }
};
}  // namespace

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
    thread_local Scratch scratch;
    std::vector<std::string_view> cur{text}, next;
    for (size_t r = 0; r < re_.size(); ++r) {
        const Regex& re = *re_[r];
        next.clear();
        for (std::string_view piece : cur) {
            auto subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
            size_t pos = 0, gap = 0;
            while (pos < piece.size()) {
                int rc = re.jit ? pcre2_jit_match(re.code, subject, piece.size(), pos, PCRE2_NO_UTF_CHECK,
                                                  scratch.md, scratch.mctx)
                                : pcre2_match(re.code, subject, piece.size(), pos, PCRE2_NO_UTF_CHECK,
                                              scratch.md, scratch.mctx);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0)
                    throw Error("pre-tokenizer '" + spec_->names[0] + "': regex match failed: " + pcre2_message(rc));
                PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.md);
                size_t s = ov[0], e = ov[1];
                if (s > gap) next.push_back(piece.substr(gap, s - gap));
                if (e > s) {
                    next.push_back(piece.substr(s, e - s));
                    pos = gap = e;
                } else {
                    // Empty match: step one code point so the scan always advances.
                    pos = s + 1;
                    while (pos < piece.size() && ((uint8_t)piece[pos] & 0xC0) == 0x80) ++pos;
                }
            }
            if (gap < piece.size()) next.push_back(piece.substr(gap));
        }
        cur.swap(next);
    }
    out.insert(out.end(), cur.begin(), cur.end());
}

}  // namespace sluice::text
