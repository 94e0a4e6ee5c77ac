// A tokenizer's vocabulary as GGUF stores it (the `tokenizer.*` keys), filled from a GGUF or from a
// Hugging Face tokenizer.json the way llama.cpp's convert_hf_to_gguf.py would write it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::gguf {
class File;
class Writer;
}  // namespace sluice::gguf

namespace sluice::text {

// tokenizer.ggml.token_type values (gguf-py TokenType).
enum class TokenType : int32_t { Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct Vocab {
    std::string model;                 // tokenizer.ggml.model: "gpt2" (byte-level BPE)
    std::string pre;                   // tokenizer.ggml.pre: "qwen2", "llama-bpe", ...
    std::vector<std::string> tokens;   // byte-level form ("Ġthe") for normal tokens, raw text for added ones
    std::vector<int32_t> token_type;   // TokenType per token
    std::vector<std::string> merges;   // "Ġ t" : the two byte-level parts, space-separated, by rank
    int32_t bos_id = -1, eos_id = -1, unk_id = -1, sep_id = -1, pad_id = -1, mask_id = -1;
    int32_t eot_id = -1, eom_id = -1;
    std::optional<bool> add_bos, add_eos, add_sep;
    std::string chat_template;         // tokenizer.chat_template; empty when absent
    // Not a GGUF key: NFC before pre-tokenizing. from_hf_json reads tokenizer.json's normalizer;
    // from_gguf takes it from the pre-tokenizer table (Qwen's files declare NFC).
    bool nfc = false;
};

struct HfImportOptions {
    std::string pre;         // tokenizer.ggml.pre to write; empty: recognise tokenizer.json's Split patterns
    int64_t vocab_size = 0;  // the model's vocab_size (config.json); ids past the tokenizer become
                             // "[PAD<i>]" unused tokens, as the converter writes. 0: config.json's, else none
};

// Reads tokenizer.json plus, from the same folder when present, tokenizer_config.json (chat template,
// special tokens, add_bos_token), chat_template.jinja and config.json (bos/eos ids). Error on a model
// other than BPE, an unsupported normalizer or pre-tokenizer, or a malformed file.
Vocab from_hf_json(const std::string& tokenizer_json_path, const HfImportOptions& opt = {});

// Reads the tokenizer.* keys (engine/text/vocab_gguf.cpp).
Vocab from_gguf(const gguf::File& f);
// Writes the tokenizer.* keys the converter writes for a gpt2-style vocabulary.
void add_to_gguf(const Vocab& v, gguf::Writer& w);

}  // namespace sluice::text
