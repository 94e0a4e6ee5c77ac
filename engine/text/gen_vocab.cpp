#include "engine/text/gen_vocab.h"

#include "engine/error.h"
#include "engine/gguf/gguf.h"

namespace sluice {

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

GenVocab gen_vocab_bytes(int64_t n_vocab) {
    if (n_vocab < 259) throw Error("--vocab " + std::to_string(n_vocab) + ": need at least 259 (256 bytes + 3 specials)");
    GenVocab v;
    for (int b = 0; b < 256; ++b) {
        v.tokens.push_back(byte_token(b));
        v.token_types.push_back(1);
    }
    for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
        v.tokens.push_back(s);
        v.token_types.push_back(3);
    }
    v.eos = 258;
    v.pad = 256;
    while (int64_t(v.tokens.size()) < n_vocab) {
        v.tokens.push_back("[PAD" + std::to_string(v.tokens.size()) + "]");
        v.token_types.push_back(5);
    }
    v.chat_template = kChatml;
    return v;
}

GenVocab gen_vocab_from_hf_json(const std::string& path) {
    throw Error("--tokenizer: importing " + path + " is not available yet");
}

void add_vocab_to_gguf(const GenVocab& v, gguf::Writer& w) {
    w.set_str("tokenizer.ggml.model", v.model);
    w.set_str("tokenizer.ggml.pre", v.pre);
    w.set_str_array("tokenizer.ggml.tokens", v.tokens);
    w.set_i32_array("tokenizer.ggml.token_type", v.token_types);
    w.set_str_array("tokenizer.ggml.merges", v.merges);
    if (v.bos >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(v.bos));
    if (v.eos >= 0) w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(v.eos));
    if (v.pad >= 0) w.set_u32("tokenizer.ggml.padding_token_id", uint32_t(v.pad));
    if (!v.chat_template.empty()) w.set_str("tokenizer.chat_template", v.chat_template);
}

}  // namespace sluice
