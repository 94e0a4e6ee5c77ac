// Template families, each a marker test and a renderer. Renderers reproduce the model's Jinja
// template for plain text conversations (no tool definitions); tests/ref/chat_template_ref.mjs renders
// Qwen3's real template for the cases the tests check.
#include "engine/text/chat_template.h"

#include "engine/error.h"

namespace sluice::text {

namespace {
bool has(std::string_view s, std::string_view marker) { return s.find(marker) != std::string_view::npos; }

// Python's str.lstrip('\n') / rstrip('\n') / strip('\n').
std::string_view lstrip_nl(std::string_view s) { while (!s.empty() && s.front() == '\n') s.remove_prefix(1); return s; }
std::string_view rstrip_nl(std::string_view s) { while (!s.empty() && s.back() == '\n') s.remove_suffix(1); return s; }
std::string_view after_last(std::string_view s, std::string_view sep) {
    size_t p = s.rfind(sep);
    return p == std::string_view::npos ? s : s.substr(p + sep.size());
}
std::string_view before_first(std::string_view s, std::string_view sep) {
    size_t p = s.find(sep);
    return p == std::string_view::npos ? s : s.substr(0, p);
}
bool starts(std::string_view s, std::string_view t) { return s.substr(0, t.size()) == t; }
bool ends(std::string_view s, std::string_view t) { return s.size() >= t.size() && s.substr(s.size() - t.size()) == t; }

constexpr std::string_view kQwen25System = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

struct Family {
    ChatKind kind;
    const char* name;
    bool (*match)(std::string_view tmpl);
};
// First match wins: Qwen3 is ChatML with <think> handling, so it comes before ChatML.
const Family kFamilies[] = {
    {ChatKind::Qwen3, "qwen3", [](std::string_view t) { return has(t, "<|im_start|>") && has(t, "</think>"); }},
    // llama.cpp: <|im_sep|> (phi-4) and <end_of_utterance> (SmolVLM) use <|im_start|> but are not ChatML.
    {ChatKind::ChatML, "chatml", [](std::string_view t) {
         return has(t, "<|im_start|>") && !has(t, "<|im_sep|>") && !has(t, "<end_of_utterance>");
     }},
    {ChatKind::DeepSeek3, "deepseek3", [](std::string_view t) {
         return has(t, "<\uFF5CAssistant\uFF5C>") && has(t, "<\uFF5CUser\uFF5C>") && has(t, "<\uFF5Cend\u2581of\u2581sentence\uFF5C>");
     }},
    {ChatKind::KimiK2, "kimi-k2", [](std::string_view t) { return has(t, "<|im_assistant|>assistant<|im_middle|>"); }},
};

void render_chatml(std::span<const ChatMessage> msgs, std::string_view default_system, std::string& out) {
    if (!default_system.empty() && (msgs.empty() || msgs[0].role != "system"))
        out += "<|im_start|>system\n" + std::string(default_system) + "<|im_end|>\n";
    for (const auto& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
}

// Qwen3: reasoning (<think>...</think>) is kept only for assistant turns after the last real user
// query; tool results are folded into user turns.
void render_qwen3(std::span<const ChatMessage> msgs, std::string& out) {
    const size_t n = msgs.size();
    size_t last_query = n ? n - 1 : 0;
    for (size_t k = n; k-- > 0;) {
        const auto& m = msgs[k];
        if (m.role == "user" && !(starts(m.content, "<tool_response>") && ends(m.content, "</tool_response>"))) {
            last_query = k;
            break;
        }
    }
    for (size_t i = 0; i < n; ++i) {
        const auto& m = msgs[i];
        if (m.role == "user" || m.role == "system") {
            out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
        } else if (m.role == "assistant") {
            std::string_view content = m.content, reasoning;
            if (has(content, "</think>")) {
                reasoning = lstrip_nl(after_last(rstrip_nl(before_first(content, "</think>")), "<think>"));
                content = lstrip_nl(after_last(content, "</think>"));
            }
            out += "<|im_start|>assistant\n";
            if (i > last_query && (i + 1 == n || !reasoning.empty())) {
                out += "<think>\n";
                out += lstrip_nl(rstrip_nl(reasoning));
                out += "\n</think>\n\n";
                out += lstrip_nl(content);
            } else {
                out += content;
            }
            out += "<|im_end|>\n";
        } else if (m.role == "tool") {
            if (i == 0 || msgs[i - 1].role != "tool") out += "<|im_start|>user";
            out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
            if (i + 1 == n || msgs[i + 1].role != "tool") out += "<|im_end|>\n";
        } else {
            throw Error("Qwen3 chat template has no role '" + m.role + "'");
        }
    }
}

// DeepSeek V3 (its tokenizer_config.json template; tests/ref/chat_template_deepseek_ref.mjs renders it):
// every system message is gathered up front, joined by blank lines; tool results are one block
// closed before the next assistant text. BOS comes from the tokenizer (add_bos_token), not from here.
// Returns false when the conversation ends inside a tool block: then no assistant opening follows.
bool render_deepseek3(std::span<const ChatMessage> msgs, std::string& out) {
    bool first_sys = true;
    for (const auto& m : msgs) {
        if (m.role != "system") continue;
        if (!first_sys) out += "\n\n";
        out += m.content;
        first_sys = false;
    }
    const std::string tools_end = "<\uFF5Ctool\u2581outputs\u2581end\uFF5C>";
    const std::string eos = "<\uFF5Cend\u2581of\u2581sentence\uFF5C>";
    bool in_tool = false, first_output = true;
    for (const auto& m : msgs) {
        if (m.role == "system") continue;
        if (m.role == "user") {
            in_tool = false;
            out += "<\uFF5CUser\uFF5C>" + m.content;
        } else if (m.role == "assistant") {
            out += (in_tool ? tools_end : "<\uFF5CAssistant\uFF5C>") + m.content + eos;
            in_tool = false;
        } else if (m.role == "tool") {
            // The template's is_output_first flag is never reset: only the first result opens the block.
            out += first_output ? "<\uFF5Ctool\u2581outputs\u2581begin\uFF5C>" : "\n";
            out += "<\uFF5Ctool\u2581output\u2581begin\uFF5C>" + m.content + "<\uFF5Ctool\u2581output\u2581end\uFF5C>";
            in_tool = true;
            first_output = false;
        } else {
            throw Error("DeepSeek-V3 chat template has no role '" + m.role + "'");
        }
    }
    if (in_tool) out += tools_end;
    return !in_tool;
}

void render_kimi_k2(std::span<const ChatMessage> msgs, std::string& out) {
    for (const auto& m : msgs) {
        if (m.role == "system") out += "<|im_system|>system<|im_middle|>";
        else if (m.role == "user") out += "<|im_user|>user<|im_middle|>";
        else if (m.role == "assistant") out += "<|im_assistant|>assistant<|im_middle|>";
        else if (m.role == "tool") out += "<|im_system|>tool<|im_middle|>";
        else throw Error("Kimi-K2 chat template has no role '" + m.role + "'");
        out += m.content + "<|im_end|>";
    }
}

std::string snippet(std::string_view t) {
    std::string s;
    for (char c : t.substr(0, 80)) s += c == '\n' ? std::string("\\n") : std::string(1, c);
    return t.size() > 80 ? s + "..." : s;
}
}  // namespace

ChatTemplate ChatTemplate::detect(std::string_view tmpl) {
    ChatTemplate t;
    if (tmpl.empty()) {
        t.defaulted_ = true;
        return t;
    }
    for (const Family& f : kFamilies) {
        if (!f.match(tmpl)) continue;
        t.kind_ = f.kind;
        if (f.kind == ChatKind::ChatML && has(tmpl, kQwen25System)) t.default_system_ = kQwen25System;
        return t;
    }
    std::string known;
    for (const Family& f : kFamilies) known += (known.empty() ? "" : ", ") + std::string(f.name);
    throw Error("chat template not recognised (it starts '" + snippet(tmpl) + "'); sluice knows " + known);
}

ChatTemplate ChatTemplate::by_name(std::string_view name) {
    for (const Family& f : kFamilies) {
        if (name != f.name) continue;
        ChatTemplate t;
        t.kind_ = f.kind;
        return t;
    }
    throw Error("unknown chat template '" + std::string(name) + "'");
}

const char* ChatTemplate::name() const {
    for (const Family& f : kFamilies)
        if (f.kind == kind_) return f.name;
    return "?";
}

std::string ChatTemplate::generation_prompt(const ChatOptions& opt) const {
    switch (kind_) {
    case ChatKind::ChatML: return "<|im_start|>assistant\n";
    case ChatKind::Qwen3:
        return opt.enable_thinking == false ? "<|im_start|>assistant\n<think>\n\n</think>\n\n" : "<|im_start|>assistant\n";
    case ChatKind::DeepSeek3: return "<\uFF5CAssistant\uFF5C>";
    case ChatKind::KimiK2: return "<|im_assistant|>assistant<|im_middle|>";
    }
    return {};
}

std::string ChatTemplate::apply(std::span<const ChatMessage> msgs, const ChatOptions& opt) const {
    std::string out;
    switch (kind_) {
    case ChatKind::ChatML: render_chatml(msgs, default_system_, out); break;
    case ChatKind::Qwen3: render_qwen3(msgs, out); break;
    case ChatKind::DeepSeek3:
        if (!render_deepseek3(msgs, out)) return out;  // ends in tool results: no assistant opening
        break;
    case ChatKind::KimiK2: render_kimi_k2(msgs, out); break;
    }
    if (opt.add_generation_prompt) out += generation_prompt(opt);
    return out;
}

}  // namespace sluice::text
