// A conversation as Markdown (for people) or JSON (for programs; sampling settings stay an object).
#include <ctime>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "history/store.h"

namespace sluice::history {

namespace {

// "2025-06-01T12:03:04Z"
std::string iso_time(int64_t ms) {
    const std::time_t t = std::time_t(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

Conversation must_get(Store& s, int64_t id) {
    auto c = s.conversation(id);
    if (!c) throw Error("there is no conversation " + std::to_string(id));
    return *c;
}

std::string fmt(double x, const char* f) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, x);
    return buf;
}

std::string timings_line(const Message& m) {
    std::string s;
    auto add = [&](const std::string& part) { s += (s.empty() ? "" : " · ") + part; };
    if (m.n_tokens > 0) add(std::to_string(m.n_tokens) + " tokens");
    if (m.timings.ttft_s) add("first token " + fmt(*m.timings.ttft_s, "%.2f") + " s");
    if (m.timings.prompt_tok_s) add("prompt " + fmt(*m.timings.prompt_tok_s, "%.1f") + " tok/s");
    if (m.timings.decode_tok_s) add("decode " + fmt(*m.timings.decode_tok_s, "%.1f") + " tok/s");
    if (m.timings.cache_hit_rate) add("expert cache hits " + fmt(100 * *m.timings.cache_hit_rate, "%.0f") + "%");
    return s;
}

std::string heading(Role r) {
    std::string s = role_name(r);
    s[0] = char(s[0] - 'a' + 'A');
    return s;
}

}  // namespace

std::string Store::export_markdown(int64_t id) {
    const Conversation c = must_get(*this, id);
    std::string md = "# " + (c.title.empty() ? "Conversation " + std::to_string(c.id) : c.title) + "\n\n";
    if (!c.model_name.empty() || !c.model_fingerprint.empty())
        md += "- Model: " + c.model_name + (c.model_fingerprint.empty() ? "" : " (`" + c.model_fingerprint + "`)") + "\n";
    md += "- Created: " + iso_time(c.created_ms) + ", updated: " + iso_time(c.updated_ms) + "\n";
    if (c.sampling_json != "{}") md += "- Sampling: `" + c.sampling_json + "`\n";
    if (!c.system_prompt.empty()) md += "\n## System prompt\n\n" + c.system_prompt + "\n";
    for (const Message& m : messages(id)) {
        md += "\n## " + heading(m.role) + "\n\n";
        if (!m.thinking.empty()) md += "<details><summary>Thinking</summary>\n\n" + m.thinking + "\n\n</details>\n\n";
        md += m.content + "\n";
        if (m.partial) md += "\n*(interrupted: this reply is incomplete)*\n";
        if (const std::string t = timings_line(m); !t.empty()) md += "\n<sub>" + t + "</sub>\n";
    }
    return md;
}

std::string Store::export_json(int64_t id) {
    using json = nlohmann::ordered_json;
    const Conversation c = must_get(*this, id);
    json j;
    j["format"] = "sluice-conversation";
    j["version"] = 1;
    j["id"] = c.id;
    j["title"] = c.title;
    j["model"] = {{"name", c.model_name}, {"fingerprint", c.model_fingerprint}};
    j["system_prompt"] = c.system_prompt;
    j["sampling"] = json::parse(c.sampling_json);
    j["created"] = iso_time(c.created_ms);
    j["updated"] = iso_time(c.updated_ms);
    json msgs = json::array();
    for (const Message& m : messages(id)) {
        json jm;
        jm["role"] = role_name(m.role);
        jm["content"] = m.content;
        if (!m.thinking.empty()) jm["thinking"] = m.thinking;
        jm["tokens"] = m.n_tokens;
        jm["partial"] = m.partial;
        jm["created"] = iso_time(m.created_ms);
        json t = json::object();
        if (m.timings.prompt_tok_s) t["prompt_tok_s"] = *m.timings.prompt_tok_s;
        if (m.timings.decode_tok_s) t["decode_tok_s"] = *m.timings.decode_tok_s;
        if (m.timings.ttft_s) t["ttft_s"] = *m.timings.ttft_s;
        if (m.timings.cache_hit_rate) t["cache_hit_rate"] = *m.timings.cache_hit_rate;
        if (!t.empty()) jm["timings"] = t;
        msgs.push_back(std::move(jm));
    }
    j["messages"] = std::move(msgs);
    // Invalid UTF-8 (a reply cut mid-character) is replaced rather than failing the export.
    return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace sluice::history
