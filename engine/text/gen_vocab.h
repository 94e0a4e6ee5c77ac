// The tokenizer a generated model carries: a real one imported from a HF tokenizer.json, or a plain
// byte-level vocabulary (256 byte tokens + ChatML specials, padded) when none is given.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sluice {

namespace gguf { class Writer; }

struct GenVocab {
    std::string model = "gpt2", pre = "qwen2";
    std::vector<std::string> tokens;
    std::vector<int32_t> token_types;  // 1 normal, 3 control, 4 user-defined, 5 unused
    std::vector<std::string> merges;
    int32_t bos = -1, eos = -1, pad = -1;
    std::string chat_template;
    size_t n_tokens() const { return tokens.size(); }
};

GenVocab gen_vocab_bytes(int64_t n_vocab);
GenVocab gen_vocab_from_hf_json(const std::string& path);
void add_vocab_to_gguf(const GenVocab& v, gguf::Writer& w);

}  // namespace sluice
