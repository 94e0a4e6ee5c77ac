#include "engine/text/gen_vocab.h"

#include "engine/error.h"

namespace sluice::text {

namespace {

// GPT-2's byte -> printable code point map, UTF-8 encoded.
std::string byte_token(int b) {
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        int n = 0;  // index among the remapped bytes
        for (int x = 0; x < b; ++x)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
        cp = 256 + n;
    }
    std::string s;
    if (cp < 0x80) {
        s += char(cp);
    } else {
        s += char(0xc0 | (cp >> 6));
        s += char(0x80 | (cp & 0x3f));
    }
    return s;
}

const char* kChatml =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

}  // namespace

Vocab byte_vocab(int64_t n_vocab) {
    if (n_vocab < 259) throw Error("--vocab " + std::to_string(n_vocab) + ": need at least 259 (256 bytes + 3 specials)");
    Vocab v;
    v.model = "gpt2";
    v.pre = "qwen2";
    for (int b = 0; b < 256; ++b) {
        v.tokens.push_back(byte_token(b));
        v.token_type.push_back(int32_t(TokenType::Normal));
    }
    for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
        v.tokens.push_back(s);
        v.token_type.push_back(int32_t(TokenType::Control));
    }
    v.eos_id = 258;
    v.pad_id = 256;
    // A few real merges ("Ġ" + letter -> " a"...): llama.cpp refuses a BPE vocabulary without merges.
    const std::string space = byte_token(' ');
    for (char c = 'a'; c <= 'z' && int64_t(v.tokens.size()) < n_vocab; ++c) {
        v.merges.push_back(space + " " + std::string(1, c));
        v.tokens.push_back(space + std::string(1, c));
        v.token_type.push_back(int32_t(TokenType::Normal));
    }
    while (int64_t(v.tokens.size()) < n_vocab) {
        v.tokens.push_back("[PAD" + std::to_string(v.tokens.size()) + "]");
        v.token_type.push_back(int32_t(TokenType::Unused));
    }
    v.chat_template = kChatml;
    return v;
}

}  // namespace sluice::text
