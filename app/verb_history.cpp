// sluice history list|show ID|export ID --format md|json|delete ID|search TEXT|budget [SIZE]
// Reads the chat history database (--db PATH, default $XDG_DATA_HOME/sluice/history.db).
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "app/args.h"
#include "app/verbs.h"
#include "engine/error.h"
#include "history/store.h"

namespace sluice {

namespace {

using history::Store;

constexpr const char* kUsage =
    "usage: sluice history [--db PATH] list [--limit N] [--json]\n"
    "       sluice history show ID [--thinking]\n"
    "       sluice history export ID --format md|json [--out FILE]\n"
    "       sluice history delete ID\n"
    "       sluice history search TEXT... [--limit N] [--json]\n"
    "       sluice history budget [SIZE]      (snapshot storage, e.g. 4G)";

std::string local_time(int64_t ms) {
    const std::time_t t = std::time_t(ms / 1000);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
    return buf;
}

std::string one_line(const std::string& s, size_t max) {
    std::string o;
    for (char c : s) o += (c == '\n' || c == '\t' || c == '\r') ? ' ' : c;
    if (o.size() <= max) return o;
    size_t cut = max - 3;
    while (cut > 0 && (uint8_t(o[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
    return o.substr(0, cut) + "...";
}

std::string human_bytes(uint64_t b) {
    char buf[32];
    if (b >= (uint64_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(uint64_t(1) << 30));
    else if (b >= (1u << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(1u << 20));
    else std::snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024.0);
    return buf;
}

int64_t parse_id(const Args& a) {
    if (a.positional().size() != 2) throw Error(std::string("this subcommand takes one conversation ID\n") + kUsage);
    const std::string& s = a.positional()[1];
    char* end = nullptr;
    const long long id = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end || id <= 0) throw Error("conversation ID must be a positive integer, got '" + s + "'");
    return id;
}

int list(Store& st, const Args& a) {
    const auto convs = st.conversations(a.i64("--limit", -1));
    if (a.has("--json")) {
        nlohmann::ordered_json j = nlohmann::ordered_json::array();
        for (const auto& c : convs)
            j.push_back({{"id", c.id}, {"title", c.title}, {"model", c.model_name}, {"messages", c.n_messages},
                         {"created_ms", c.created_ms}, {"updated_ms", c.updated_ms}});
        std::printf("%s\n", j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
        return 0;
    }
    if (convs.empty()) {
        std::printf("no conversations in %s\n", st.path().c_str());
        return 0;
    }
    std::printf("%6s  %-16s  %5s  %-24s  %s\n", "ID", "UPDATED", "MSGS", "MODEL", "TITLE");
    for (const auto& c : convs)
        std::printf("%6lld  %-16s  %5lld  %-24s  %s\n", (long long)c.id, local_time(c.updated_ms).c_str(), (long long)c.n_messages,
                    one_line(c.model_name, 24).c_str(), one_line(c.title.empty() ? "(untitled)" : c.title, 60).c_str());
    return 0;
}

int show(Store& st, const Args& a) {
    const int64_t id = parse_id(a);
    const auto c = st.conversation(id);
    if (!c) throw Error("there is no conversation " + std::to_string(id));
    std::printf("#%lld  %s\n", (long long)c->id, c->title.empty() ? "(untitled)" : c->title.c_str());
    std::printf("model: %s  %s\ncreated %s, updated %s, %lld messages\n", c->model_name.c_str(), c->model_fingerprint.c_str(),
                local_time(c->created_ms).c_str(), local_time(c->updated_ms).c_str(), (long long)c->n_messages);
    if (c->sampling_json != "{}") std::printf("sampling: %s\n", c->sampling_json.c_str());
    if (!c->system_prompt.empty()) std::printf("\n--- system prompt\n%s\n", c->system_prompt.c_str());
    for (const auto& m : st.messages(id)) {
        std::string head = "--- [" + std::to_string(m.seq) + "] " + history::role_name(m.role) + " · " + local_time(m.created_ms);
        if (m.n_tokens > 0) head += " · " + std::to_string(m.n_tokens) + " tokens";
        if (m.timings.decode_tok_s) head += " · " + std::to_string(int(*m.timings.decode_tok_s + 0.5)) + " tok/s";
        if (m.partial) head += " · INTERRUPTED";
        std::printf("\n%s\n", head.c_str());
        if (!m.thinking.empty()) {
            if (a.has("--thinking")) std::printf("<thinking>\n%s\n</thinking>\n", m.thinking.c_str());
            else std::printf("(thinking: %zu bytes; --thinking shows it)\n", m.thinking.size());
        }
        std::printf("%s\n", m.content.c_str());
    }
    return 0;
}

int export_(Store& st, const Args& a) {
    const int64_t id = parse_id(a);
    const std::string format = a.required("--format");
    std::string text;
    if (format == "md" || format == "markdown") text = st.export_markdown(id);
    else if (format == "json") text = st.export_json(id);
    else throw Error("--format must be md or json, got '" + format + "'");
    if (!a.has("--out")) {
        std::fwrite(text.data(), 1, text.size(), stdout);
        return 0;
    }
    const std::string out = a.str("--out");
    std::ofstream f(out, std::ios::binary);
    f << text;
    f.close();
    if (!f) throw Error("cannot write " + out);
    std::fprintf(stderr, "wrote %s (%zu bytes)\n", out.c_str(), text.size());
    return 0;
}

int delete_(Store& st, const Args& a) {
    const int64_t id = parse_id(a);
    const auto c = st.conversation(id);
    if (!c || !st.delete_conversation(id)) throw Error("there is no conversation " + std::to_string(id));
    std::printf("deleted conversation %lld (%lld messages)\n", (long long)id, (long long)c->n_messages);
    return 0;
}

int search(Store& st, const Args& a) {
    std::string text;
    for (size_t i = 1; i < a.positional().size(); ++i) text += (i > 1 ? " " : "") + a.positional()[i];
    if (text.empty()) throw Error(std::string("search needs some text\n") + kUsage);
    const auto hits = st.search(text, a.i64("--limit", 50));
    if (a.has("--json")) {
        nlohmann::ordered_json j = nlohmann::ordered_json::array();
        for (const auto& h : hits)
            j.push_back({{"conversation", h.conversation_id}, {"message", h.message_id}, {"seq", h.seq}, {"title", h.title},
                         {"role", history::role_name(h.role)}, {"snippet", h.snippet}});
        std::printf("%s\n", j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
        return 0;
    }
    if (hits.empty()) std::printf("no messages match\n");
    for (const auto& h : hits)
        std::printf("#%lld [%lld] %-9s %s: %s\n", (long long)h.conversation_id, (long long)h.seq, history::role_name(h.role),
                    one_line(h.title.empty() ? "(untitled)" : h.title, 40).c_str(), one_line(h.snippet, 120).c_str());
    return 0;
}

int budget(Store& st, const Args& a) {
    if (a.positional().size() > 2) throw Error(std::string("budget takes at most one size\n") + kUsage);
    if (a.positional().size() == 2) {
        char* argv[] = {const_cast<char*>("--size"), const_cast<char*>(a.positional()[1].c_str())};
        st.set_snapshot_budget(Args(2, argv, {"--size"}).size("--size", 0));
    }
    std::printf("snapshots: %s stored, budget %s\n", human_bytes(st.snapshot_bytes()).c_str(), human_bytes(st.snapshot_budget()).c_str());
    return 0;
}

}  // namespace

int verb_history(int argc, char** argv) {
    Args a(argc, argv, {"--db", "--format", "--out", "--limit"}, {"--thinking", "--json"});
    if (a.positional().empty()) throw Error(kUsage);
    const std::string sub = a.positional()[0];
    using Fn = int (*)(Store&, const Args&);
    const std::pair<const char*, Fn> subs[] = {{"list", list},     {"show", show},     {"export", export_},
                                               {"delete", delete_}, {"search", search}, {"budget", budget}};
    for (const auto& [name, fn] : subs) {
        if (sub != name) continue;
        const std::string path = a.has("--db") ? a.str("--db") : Store::default_path();
        if (sub != "budget" && ::access(path.c_str(), F_OK) != 0) {  // reading creates nothing
            if (sub == "list") {
                std::printf("no conversations (no history database at %s yet)\n", path.c_str());
                return 0;
            }
            throw Error("no history database at " + path);
        }
        Store st(path);
        return fn(st, a);
    }
    throw Error("unknown history subcommand '" + sub + "'\n" + kUsage);
}

}  // namespace sluice
