// Hugging Face tokenizer.json -> Vocab, following llama.cpp's converter (conversion/base.py
// get_vocab_base + _set_vocab_gpt2, gguf-py vocab.py SpecialVocab) so that a GGUF we write from it
// carries the same tokenizer.* values as one made by convert_hf_to_gguf.py.
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/text/pretokenize.h"
#include "engine/text/vocab.h"

namespace sluice::text {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
json read_json(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw Error("cannot open '" + p.string() + "'");
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw Error("'" + p.string() + "' is not valid JSON: " + e.what());
    }
}

std::optional<json> read_json_if(const fs::path& p) {
    if (!fs::is_regular_file(p)) return std::nullopt;
    return read_json(p);
}

bool ends_with(const std::string& s, std::string_view t) { return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0; }
bool starts_with(const std::string& s, std::string_view t) { return s.rfind(t, 0) == 0; }

// The converter's does_token_look_special: added tokens that ought to be control tokens.
bool looks_special(const std::string& t) {
    if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
    if (starts_with(t, "<|") && ends_with(t, "|>")) return true;
    if (starts_with(t, "<\uFF5C") && ends_with(t, "\uFF5C>")) return true;  // deepseek's fullwidth bars
    return starts_with(t, "<unused") && ends_with(t, ">");
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
    for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
    return s;
}

std::string snippet(const std::string& s) { return s.size() > 60 ? s.substr(0, 60) + "..." : s; }

// Split patterns of a Sequence[Split..., ByteLevel] pre-tokenizer; {"<gpt2>"} for a bare ByteLevel
// that runs its own regex.
std::vector<std::string> split_patterns(const json& pt, const std::string& path) {
    auto unsupported = [&](const std::string& what) {
        return Error("'" + path + "': unsupported pre_tokenizer (" + what + "); sluice handles byte-level BPE with Split regexes");
    };
    if (pt.is_null()) throw unsupported("none");
    std::string type = pt.value("type", "");
    if (type == "ByteLevel") {
        if (pt.value("add_prefix_space", false)) throw unsupported("ByteLevel with add_prefix_space");
        if (!pt.value("use_regex", true)) throw unsupported("ByteLevel without any Split");
        return {"<gpt2>"};
    }
    if (type != "Sequence") throw unsupported(type);
    std::vector<std::string> out;
    bool byte_level = false;
    for (const auto& p : pt.at("pretokenizers")) {
        std::string t = p.value("type", "");
        if (t == "Split") {
            const json& pat = p.at("pattern");
            if (!pat.contains("Regex")) throw unsupported("Split on a plain string");
            if (p.value("behavior", "") != "Isolated" || p.value("invert", false))
                throw unsupported("Split with behavior " + p.value("behavior", std::string("?")));
            out.push_back(pat["Regex"].get<std::string>());
        } else if (t == "ByteLevel") {
            if (p.value("add_prefix_space", false)) throw unsupported("ByteLevel with add_prefix_space");
            if (p.value("use_regex", true)) out.push_back("<gpt2>");
            byte_level = true;
        } else {
            throw unsupported(t);
        }
    }
    if (!byte_level) throw unsupported("no ByteLevel step");
    return out;
}

// tokenizer_config.json's `<typ>_token`: a string or {"content": ...}.
std::optional<std::string> config_token(const json& cfg, const std::string& key) {
    if (!cfg.contains(key)) return std::nullopt;
    const json& e = cfg[key];
    if (e.is_string()) return e.get<std::string>();
    if (e.is_object() && e.contains("content") && e["content"].is_string()) return e["content"].get<std::string>();
    return std::nullopt;
}
}  // namespace

Vocab from_hf_json(const std::string& path, const HfImportOptions& opt) {
    const json tj = read_json(path);
    const fs::path dir = fs::path(path).parent_path();
    const std::optional<json> cfg = read_json_if(dir / "tokenizer_config.json");
    const std::optional<json> model_cfg = read_json_if(dir / "config.json");

    const json& model = tj.at("model");
    if (model.value("type", "") != "BPE")
        throw Error("'" + path + "': tokenizer model '" + model.value("type", std::string("?")) +
                    "' is not supported; sluice reads byte-level BPE (tokenizer.ggml.model gpt2)");
    if (model.value("byte_fallback", false))
        throw Error("'" + path + "': BPE with byte_fallback (sentencepiece-style) is not supported");

    Vocab v;
    v.model = "gpt2";

    // Normalizer: only NFC (Qwen) or none, possibly inside a Sequence (DeepSeek-V3 declares an empty one).
    std::function<void(const json&)> normalizer = [&](const json& n) {
        if (n.is_null()) return;
        const std::string t = n.value("type", "");
        if (t == "NFC") {
            v.nfc = true;
        } else if (t == "Sequence") {
            for (const json& m : n.at("normalizers")) normalizer(m);
        } else {
            throw Error("'" + path + "': unsupported normalizer '" + t + "' (sluice handles NFC or none)");
        }
    };
    normalizer(tj.contains("normalizer") ? tj["normalizer"] : json());

    // Pre-tokenizer name: given, or recognised from the Split patterns.
    std::vector<std::string> pats = split_patterns(tj.at("pre_tokenizer"), path);
    if (!opt.pre.empty()) {
        if (!find_pre(opt.pre)) throw Error("unknown pre-tokenizer '" + opt.pre + "'");
        v.pre = opt.pre;
    } else if (pats == std::vector<std::string>{"<gpt2>"}) {
        v.pre = "gpt-2";
    } else if (const PreSpec* s = find_pre_by_hf(pats)) {
        v.pre = s->names[0];
    } else {
        throw Error("'" + path + "': pre-tokenizer patterns not recognised (first: '" + snippet(pats.empty() ? "" : pats[0]) +
                    "'); name one of sluice's pre-tokenizers explicitly");
    }

    // Tokens: the BPE vocab, then added tokens (which may reuse or extend its ids).
    std::map<int64_t, std::string> by_id;
    for (const auto& [tok, id] : model.at("vocab").items()) by_id[id.get<int64_t>()] = tok;
    struct Added { std::string content; bool special; };
    std::map<int64_t, Added> added;
    std::vector<std::pair<std::string, int64_t>> added_order;  // file order, for special-token lookup
    for (const auto& a : tj.value("added_tokens", json::array())) {
        int64_t id = a.at("id").get<int64_t>();
        std::string c = a.at("content").get<std::string>();
        added[id] = {c, a.value("special", false)};
        by_id[id] = c;
        added_order.emplace_back(c, id);
    }
    if (by_id.empty()) throw Error("'" + path + "': empty vocabulary");
    if (by_id.begin()->first < 0) throw Error("'" + path + "': negative token id");

    int64_t n = by_id.rbegin()->first + 1;
    int64_t want = opt.vocab_size;
    if (!want && model_cfg && model_cfg->contains("vocab_size") && (*model_cfg)["vocab_size"].is_number_integer())
        want = (*model_cfg)["vocab_size"].get<int64_t>();
    if (want && want < n)
        throw Error("'" + path + "': vocab_size " + std::to_string(want) + " is smaller than the tokenizer's " + std::to_string(n) + " ids");
    if (want) n = want;

    v.tokens.resize(n);
    v.token_type.resize(n);
    for (int64_t i = 0; i < n; ++i) {
        auto it = by_id.find(i);
        if (it == by_id.end()) {
            v.tokens[i] = "[PAD" + std::to_string(i) + "]";
            v.token_type[i] = (int32_t)TokenType::Unused;
            continue;
        }
        std::string tok = it->second;
        auto ad = added.find(i);
        if (ad == added.end()) {
            v.token_type[i] = (int32_t)TokenType::Normal;
        } else if (ad->second.special || looks_special(tok)) {
            v.token_type[i] = (int32_t)TokenType::Control;
        } else {
            tok = replace_all(tok, "\u2581", " ");  // the converter pre-normalises user-defined spaces
            v.token_type[i] = (int32_t)TokenType::UserDefined;
        }
        v.tokens[i] = std::move(tok);
    }

    // Merges: "a b" strings, or [a, b] pairs whose spaces become U+0120 as the converter writes them.
    for (const auto& m : model.value("merges", json::array())) {
        if (m.is_string()) {
            v.merges.push_back(m.get<std::string>());
        } else if (m.is_array() && m.size() == 2) {
            v.merges.push_back(replace_all(m[0].get<std::string>(), " ", "\u0120") + " " +
                               replace_all(m[1].get<std::string>(), " ", "\u0120"));
        } else {
            throw Error("'" + path + "': unknown merges format");
        }
    }

    // Post-processor: a template that opens/closes with a special token means add BOS/EOS.
    std::optional<std::string> bos_text = cfg ? config_token(*cfg, "bos_token") : std::nullopt;
    std::optional<std::string> eos_text = cfg ? config_token(*cfg, "eos_token") : std::nullopt;
    if (tj.contains("post_processor") && tj["post_processor"].is_object()) {
        const json& pp = tj["post_processor"];
        json procs = pp.contains("processors") ? pp["processors"] : json::array({pp});
        for (const auto& p : procs) {
            std::string t = p.value("type", "");
            if (t == "RobertaProcessing") {
                v.add_bos = v.add_eos = v.add_sep = true;
            } else if (t == "TemplateProcessing") {
                const json single = p.value("single", json::array());
                if (single.size() > 1 && single.front().contains("SpecialToken")) {
                    std::string first = single.front()["SpecialToken"].value("id", "");
                    if (!bos_text) bos_text = first;
                    v.add_bos = first == *bos_text;
                }
                if (single.size() > 1 && single.back().contains("SpecialToken")) {
                    std::string last = single.back()["SpecialToken"].value("id", "");
                    if (!eos_text) eos_text = last;
                    v.add_eos = last == *eos_text;
                }
            }
        }
    }

    // Special-token ids: tokenizer_config names them by text (looked up among added tokens), then
    // config.json fills the ones still missing by id.
    struct Slot { const char* typ; int32_t* id; std::optional<bool>* add; };
    const Slot slots[] = {{"bos", &v.bos_id, &v.add_bos}, {"eos", &v.eos_id, &v.add_eos}, {"unk", &v.unk_id, nullptr},
                          {"sep", &v.sep_id, &v.add_sep}, {"pad", &v.pad_id, nullptr}, {"mask", &v.mask_id, nullptr}};
    if (cfg) {
        for (const Slot& s : slots) {
            std::string typ = s.typ;
            if (s.add && cfg->contains("add_" + typ + "_token") && (*cfg)["add_" + typ + "_token"].is_boolean())
                *s.add = (*cfg)["add_" + typ + "_token"].get<bool>();
            std::optional<std::string> text = config_token(*cfg, typ + "_token");
            if (typ == "bos" && !text) text = bos_text;
            if (typ == "eos" && !text) text = eos_text;
            if (!text) continue;
            for (const auto& [c, id] : added_order)
                if (c == *text) { *s.id = (int32_t)id; break; }
        }
    }
    if (model_cfg) {
        for (const Slot& s : slots) {
            const std::string key = std::string(s.typ) + "_token_id";
            const json* src = model_cfg->contains(key) ? &(*model_cfg)[key]
                            : model_cfg->contains("text_config") && (*model_cfg)["text_config"].contains(key)
                                ? &(*model_cfg)["text_config"][key] : nullptr;
            if (*s.id < 0 && src && src->is_number_integer() && src->get<int64_t>() >= 0)
                *s.id = (int32_t)src->get<int64_t>();
        }
    }

    // Chat template: tokenizer_config.json's, else chat_template.jinja (read only with a config).
    if (cfg) {
        const json& ct = cfg->contains("chat_template") ? (*cfg)["chat_template"] : json();
        if (ct.is_string()) {
            v.chat_template = ct.get<std::string>();
        } else if (ct.is_array()) {
            for (const auto& e : ct)
                if (e.value("name", "") == "default") v.chat_template = e.value("template", "");
        } else if (fs::is_regular_file(dir / "chat_template.jinja")) {
            std::ifstream in(dir / "chat_template.jinja", std::ios::binary);
            v.chat_template.assign(std::istreambuf_iterator<char>(in), {});
        }
    }
    return v;
}

}  // namespace sluice::text
