// Byte-level BPE tokenizer (tokenizer.ggml.model "gpt2"): text -> ids -> bytes.
//
// encode: invalid UTF-8 -> U+FFFD; added tokens matched first (leftmost-longest) when parse_special;
// the text between them NFC-normalised if the vocab says so, cut by the pre-tokenizer's regexes,
// each piece mapped to bytes' symbols and merged by rank.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/text/pretokenize.h"
#include "engine/text/vocab.h"

namespace sluice::text {

class Tokenizer {
public:
    // Error when the model is not "gpt2", the pre-tokenizer is unknown, or a byte has no token.
    explicit Tokenizer(Vocab v);

    // parse_special: control and user-defined tokens written in the text become their ids (chat
    // templates need this); false: they are plain text (safe for user input). Note llama.cpp always
    // matches user-defined tokens; HF always matches every added token.
    std::vector<int32_t> encode(std::string_view text, bool parse_special) const;

    // The bytes a token stands for (raw text for control tokens; may be part of a UTF-8 sequence).
    const std::string& piece(int32_t id) const { return bytes_.at(id); }
    // Concatenated bytes; control and unused tokens are left out unless `special`.
    std::string decode(std::span<const int32_t> ids, bool special = false) const;

    int32_t n_tokens() const { return (int32_t)bytes_.size(); }
    TokenType type(int32_t id) const { return (TokenType)vocab_.token_type.at(id); }
    bool is_control(int32_t id) const { return type(id) == TokenType::Control; }
    // Id of an added token by its text ("<|im_end|>"), else of a normal token by its bytes; -1 if none.
    int32_t find(std::string_view text) const;
    const Vocab& vocab() const { return vocab_; }
    const PreTokenizer& pre() const { return pre_; }

private:
    void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
    void encode_text(std::string_view text, std::vector<int32_t>& out) const;

    struct Merge { int32_t rank, id; };
    Vocab vocab_;
    PreTokenizer pre_;
    std::vector<std::string> bytes_;                     // per id
    std::unordered_map<std::string, int32_t> by_bytes_;  // normal tokens
    std::unordered_map<uint64_t, Merge> merges_;         // (left id << 32 | right id) -> rank, result
    int32_t byte_id_[256];
    // Added tokens by first byte, longest first, for leftmost-longest matching.
    std::vector<std::pair<std::string, int32_t>> specials_[256];
    std::unordered_map<std::string, int32_t> special_ids_;
};

// Turns a stream of ids into printable text: bytes of a character split across tokens are held
// back until complete; ill-formed bytes become U+FFFD.
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& t, bool special = false) : tok_(t), special_(special) {}
    std::string push(int32_t id);  // the complete characters this token finishes
    std::string flush();           // whatever is held, ill-formed bytes as U+FFFD
    size_t pending() const { return held_.size(); }

private:
    const Tokenizer& tok_;
    bool special_;
    std::string held_;
};

// GPT-2's reversible byte <-> printable code point map ("Ġ" is the space byte 0x20).
uint32_t byte_to_cp(uint8_t b);
// -1 when cp is not one of the 256 mapped code points.
int byte_from_cp(uint32_t cp);

}  // namespace sluice::text
