#include "ui/sqlite_store.h"

#include <algorithm>
#include <map>

#include "engine/gguf/gguf.h"
#include "history/resume.h"
#include "history/sqlite.h"
#include "history/store.h"

namespace sluice::ui {

namespace {

// The engine thread's side: restores and saves prefill snapshots over its own connection.
class SqliteSnapshots : public SnapshotStore {
public:
    explicit SqliteSnapshots(const std::string& path) : store_(path) {}

    Restored restore(Model& m, const ModelOptions& opt, int64_t conv, std::span<const int32_t> ids, int64_t have) override {
        const history::ModelIdentity& ident = identity(m, opt);
        // history::resume resets the model: worth it only when some snapshot gives more than the
        // model holds already (one of another model or settings counts, so its notice is shown).
        const int64_t cap = std::max<int64_t>(int64_t(ids.size()) - 1, 0);
        int64_t best = 0;
        for (const history::SnapshotInfo& s : store_.snapshots(conv)) {
            size_t p = 0;
            while (p < s.tokens.size() && p < ids.size() && s.tokens[p] == ids[p]) ++p;
            best = std::max(best, std::min(int64_t(p), cap));
        }
        Restored r;
        if (best <= have) return r;
        const history::ResumeResult rr = history::resume(m, store_, conv, ids, ident);
        r.touched = true;
        r.tokens = rr.restored;
        r.notice = rr.notice;
        return r;
    }

    bool save(const Model& m, const ModelOptions& opt, int64_t conv, std::span<const int32_t> ids) override {
        return history::save_snapshot(m, store_, conv, ids, identity(m, opt)) != 0;
    }

private:
    // The fingerprint reads the GGUF header and a few windows of weights: once per loaded model.
    const history::ModelIdentity& identity(const Model& m, const ModelOptions& opt) {
        if (&m != ident_model_ || opt.experts_per_token != ident_experts_) {
            ident_ = history::model_identity(m, opt);
            ident_model_ = &m;
            ident_experts_ = opt.experts_per_token;
        }
        return ident_;
    }

    history::Store store_;
    history::ModelIdentity ident_;
    const Model* ident_model_ = nullptr;
    int64_t ident_experts_ = -1;
};

ConversationInfo to_info(const history::Conversation& c) {
    ConversationInfo i;
    i.id = c.id;
    i.title = c.title;
    i.model_name = c.model_name;
    i.system_prompt = c.system_prompt;
    i.updated_ms = c.updated_ms;
    i.n_messages = c.n_messages;
    return i;
}

class SqliteStore : public ConversationStore {
public:
    explicit SqliteStore(const std::string& path) : store_(path) {}

    std::vector<ConversationInfo> list() override {
        std::vector<ConversationInfo> out;
        for (const history::Conversation& c : store_.conversations()) out.push_back(to_info(c));
        return out;
    }
    std::optional<ConversationInfo> get(int64_t id) override {
        auto c = store_.conversation(id);
        if (!c) return std::nullopt;
        return to_info(*c);
    }
    int64_t create(const ConversationInfo& ci) override {
        history::Conversation c;
        c.title = ci.title;
        c.model_name = ci.model_name;
        c.model_fingerprint = fingerprint(ci.model_path);
        c.system_prompt = ci.system_prompt;
        return store_.create_conversation(c);
    }
    void update(const ConversationInfo& ci) override {
        auto c = store_.conversation(ci.id);
        if (!c) return;
        c->title = ci.title;
        c->system_prompt = ci.system_prompt;
        store_.update_conversation(*c);
    }
    bool remove(int64_t id) override { return store_.delete_conversation(id); }

    std::vector<StoredMessage> messages(int64_t id) override {
        std::vector<StoredMessage> out;
        for (const history::Message& m : store_.messages(id)) {
            StoredMessage s;
            s.role = history::role_name(m.role);
            s.content = m.content;
            s.thinking = m.thinking;
            s.n_tokens = m.n_tokens;
            s.figures = {m.timings.prompt_tok_s, m.timings.decode_tok_s, m.timings.ttft_s, m.timings.cache_hit_rate,
                         m.partial ? finish_name(ReplyStats::Finish::Stopped) : ""};
            s.partial = m.partial;
            s.seq = m.seq;
            out.push_back(std::move(s));
        }
        return out;
    }
    int64_t append(int64_t id, const StoredMessage& s) override {
        history::Message m;
        m.role = history::parse_role(s.role);
        m.content = s.content;
        m.thinking = s.thinking;
        m.n_tokens = s.n_tokens;
        m.timings = {s.figures.prompt_tok_s, s.figures.decode_tok_s, s.figures.ttft_s, s.figures.cache_hit_rate};
        m.partial = s.partial;
        const int64_t msg = store_.add_message(id, m);
        history::Stmt st(store_.db(), "SELECT seq FROM messages WHERE id = ?1");
        st.bind(1, msg);
        return st.step() ? st.i64(0) : 0;
    }
    void erase_from(int64_t id, int64_t seq) override { store_.delete_messages_from(id, seq); }

    std::string export_text(int64_t id, std::string_view format) override {
        return format == "json" ? store_.export_json(id) : store_.export_markdown(id);
    }
    std::shared_ptr<SnapshotStore> snapshot_store() override {
        if (!snapshots_) snapshots_ = std::make_shared<SqliteSnapshots>(store_.path());
        return snapshots_;
    }

    std::optional<std::string> setting(std::string_view key) override { return store_.setting(key); }
    void set_setting(std::string_view key, std::string_view value) override { store_.set_setting(key, value); }

private:
    // A conversation notes its model's fingerprint (shown by `sluice history show`, exports).
    std::string fingerprint(const std::string& model_path) {
        if (model_path.empty()) return {};
        auto it = fingerprints_.find(model_path);
        if (it != fingerprints_.end()) return it->second;
        std::string fp;
        try {
            fp = history::model_fingerprint(*gguf::File::open(model_path));
        } catch (const Error&) {  // only a note: the conversation is stored without it
        }
        return fingerprints_[model_path] = fp;
    }

    history::Store store_;
    std::shared_ptr<SqliteSnapshots> snapshots_;
    std::map<std::string, std::string> fingerprints_;
};

}  // namespace

std::unique_ptr<ConversationStore> make_sqlite_store(const std::string& path) { return std::make_unique<SqliteStore>(path); }

}  // namespace sluice::ui
