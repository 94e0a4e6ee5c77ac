// Pre-tokenizers: the regexes that cut text into words before BPE, by `tokenizer.ggml.pre` name.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::text {

struct PreSpec {
    std::vector<std::string> names;    // first is the canonical GGUF name, the rest are aliases
    std::vector<std::string> regexes;  // PCRE2 (UTF + UCP), applied in turn, each to every piece
    std::vector<std::string> hf;       // the tokenizer.json Split patterns this entry stands for
    bool ignore_merges = false;        // a word that is itself a token is not BPE-merged (llama3)
    bool nfc = false;                  // tokenizer.json declares an NFC normalizer
};

// nullptr when unknown.
const PreSpec* find_pre(std::string_view name);
// The entry whose tokenizer.json patterns equal `split_patterns`, or nullptr.
const PreSpec* find_pre_by_hf(const std::vector<std::string>& split_patterns);
const std::vector<PreSpec>& pre_table();

// Cuts valid UTF-8 into pieces (every byte lands in exactly one piece; matches and the gaps between
// them are both pieces, as HF's Split with behavior "Isolated"). Thread-safe.
class PreTokenizer {
public:
    explicit PreTokenizer(std::string_view pre);  // Error naming an unknown name
    ~PreTokenizer();
    PreTokenizer(const PreTokenizer&) = delete;
    PreTokenizer& operator=(const PreTokenizer&) = delete;

    const PreSpec& spec() const { return *spec_; }
    // Appends the pieces of text (views into it) to out.
    void split(std::string_view text, std::vector<std::string_view>& out) const;

private:
    struct Regex;
    const PreSpec* spec_;
    std::vector<std::unique_ptr<Regex>> re_;
};

}  // namespace sluice::text
