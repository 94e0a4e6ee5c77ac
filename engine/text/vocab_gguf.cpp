// Vocab <-> the GGUF tokenizer.* keys (names from gguf-py constants.py Keys.Tokenizer).
#include "engine/gguf/gguf.h"
#include "engine/text/pretokenize.h"
#include "engine/text/vocab.h"

namespace sluice::text {

namespace {
struct IdKey { const char* key; int32_t Vocab::*id; };
const IdKey kIdKeys[] = {
    {"tokenizer.ggml.bos_token_id", &Vocab::bos_id},       {"tokenizer.ggml.eos_token_id", &Vocab::eos_id},
    {"tokenizer.ggml.unknown_token_id", &Vocab::unk_id},   {"tokenizer.ggml.seperator_token_id", &Vocab::sep_id},
    {"tokenizer.ggml.padding_token_id", &Vocab::pad_id},   {"tokenizer.ggml.mask_token_id", &Vocab::mask_id},
    {"tokenizer.ggml.eot_token_id", &Vocab::eot_id},       {"tokenizer.ggml.eom_token_id", &Vocab::eom_id},
};
struct AddKey { const char* key; std::optional<bool> Vocab::*flag; };
const AddKey kAddKeys[] = {
    {"tokenizer.ggml.add_bos_token", &Vocab::add_bos},
    {"tokenizer.ggml.add_eos_token", &Vocab::add_eos},
    {"tokenizer.ggml.add_sep_token", &Vocab::add_sep},
};
}  // namespace

Vocab from_gguf(const gguf::File& f) {
    Vocab v;
    v.model = f.get_string("tokenizer.ggml.model");
    if (v.model != "gpt2")
        throw Error("tokenizer.ggml.model '" + v.model + "' in " + f.path() +
                    " is not supported; sluice reads byte-level BPE ('gpt2')");
    if (!f.find("tokenizer.ggml.pre"))
        throw Error("tokenizer.ggml.pre missing in " + f.path() + "; without it the pre-tokenizer is unknown");
    v.pre = f.get_string("tokenizer.ggml.pre");
    const PreSpec* spec = find_pre(v.pre);
    if (!spec) throw Error("tokenizer.ggml.pre '" + v.pre + "' in " + f.path() + " is not a pre-tokenizer sluice knows");
    v.nfc = spec->nfc;

    v.tokens = f.get_string_array("tokenizer.ggml.tokens");
    if (f.find("tokenizer.ggml.token_type")) {
        for (int64_t t : f.get_int_array("tokenizer.ggml.token_type")) v.token_type.push_back((int32_t)t);
        if (v.token_type.size() != v.tokens.size())
            throw Error("tokenizer.ggml.token_type in " + f.path() + " has " + std::to_string(v.token_type.size()) +
                        " entries; expected " + std::to_string(v.tokens.size()) + " (one per token)");
    } else {
        v.token_type.assign(v.tokens.size(), (int32_t)TokenType::Normal);
    }
    // A byte-level vocabulary without merges is valid (every byte is its own token).
    if (f.find("tokenizer.ggml.merges")) v.merges = f.get_string_array("tokenizer.ggml.merges");

    for (const IdKey& k : kIdKeys) {
        if (!f.find(k.key)) continue;
        uint64_t id = f.get_uint(k.key);
        if (id >= v.tokens.size())
            throw Error(std::string(k.key) + " = " + std::to_string(id) + " in " + f.path() + " is past the " +
                        std::to_string(v.tokens.size()) + " tokens");
        v.*k.id = (int32_t)id;
    }
    for (const AddKey& k : kAddKeys)
        if (f.find(k.key)) v.*k.flag = f.get_bool(k.key);
    v.chat_template = f.get_string_or("tokenizer.chat_template", "");
    return v;
}

void add_to_gguf(const Vocab& v, gguf::Writer& w) {
    w.set_str("tokenizer.ggml.model", v.model);
    w.set_str("tokenizer.ggml.pre", v.pre);
    w.set_str_array("tokenizer.ggml.tokens", v.tokens);
    w.set_i32_array("tokenizer.ggml.token_type", v.token_type);
    if (!v.merges.empty()) w.set_str_array("tokenizer.ggml.merges", v.merges);
    for (const IdKey& k : kIdKeys)
        if (v.*k.id >= 0) w.set_u32(k.key, (uint32_t)(v.*k.id));
    for (const AddKey& k : kAddKeys)
        if (v.*k.flag) w.set_bool(k.key, *(v.*k.flag));
    if (!v.chat_template.empty()) w.set_str("tokenizer.chat_template", v.chat_template);
}

}  // namespace sluice::text
