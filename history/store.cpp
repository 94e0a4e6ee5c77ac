// Store: opening (file mode, pragmas, migrations), conversations, messages, settings, search.
// Snapshots are in snapshots.cpp, export in export.cpp.
#include "history/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "history/schema.h"
#include "history/sqlite.h"
#include "history/store_internal.h"

namespace sluice::history {

int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

const char* role_name(Role r) {
    switch (r) {
        case Role::System: return "system";
        case Role::User: return "user";
        case Role::Assistant: return "assistant";
        case Role::Tool: return "tool";
    }
    return "?";
}

Role parse_role(std::string_view s) {
    for (Role r : {Role::System, Role::User, Role::Assistant, Role::Tool})
        if (s == role_name(r)) return r;
    throw Error("unknown message role '" + std::string(s) + "' (expected system, user, assistant or tool)");
}

std::string Store::default_path() {
    const char* xdg = std::getenv("XDG_DATA_HOME");
    std::string base;
    if (xdg && *xdg == '/') {  // the spec says relative values are to be ignored
        base = xdg;
    } else {
        const char* home = std::getenv("HOME");
        if (!home || !*home) throw Error("neither XDG_DATA_HOME nor HOME is set: cannot place the history database");
        base = std::string(home) + "/.local/share";
    }
    return base + "/sluice/history.db";
}

namespace {

// "" is SQLite's private temporary database; neither gets a file of ours or WAL.
bool is_memory(const std::string& path) { return path.empty() || path == ":memory:"; }

// mkdir -p with 0700 for what it creates: the history is private.
void make_parent_dirs(const std::string& path) {
    for (size_t i = 1; (i = path.find('/', i)) != std::string::npos; ++i) {
        const std::string dir = path.substr(0, i);
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
            throw Error("cannot create directory " + dir + ": " + std::strerror(errno));
    }
}

// Creates the file with mode 0600 before SQLite does (SQLite would use 0644 & ~umask). Never
// truncates: an existing file is only checked to be a regular file.
void ensure_private_file(const std::string& path) {
    make_parent_dirs(path);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    const bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    ::close(fd);
    if (!ok) throw Error(path + " is not a regular file");
}

}  // namespace

Store::Store(const std::string& path) : Store(path, Options{}) {}

Store::Store(const std::string& path, Options opt) : path_(path), opt_(opt) {
    const bool memory = is_memory(path);
    if (!memory) ensure_private_file(path);
    db_ = std::make_unique<Db>(path);
    db_->exec("PRAGMA busy_timeout = 5000");
    // The first read of the file: a non-SQLite file fails here, before anything is written to it.
    int64_t pages = 0, tables = 0, version = 0;
    try {
        pages = db_->scalar_i64("PRAGMA page_count");
        tables = db_->scalar_i64("SELECT count(*) FROM sqlite_schema");
        version = db_->scalar_i64("PRAGMA user_version");
    } catch (const SqlError& e) {
        throw Error(path + " is not a usable SQLite database (" + e.what() + "); it was left untouched: move it away or choose another path");
    }
    if (version == 0 && tables > 0)
        throw Error(path + " is a SQLite database but not a sluice history (it has tables and no schema version); it was left untouched");
    if (version > latest_schema_version())
        throw Error(path + " has schema version " + std::to_string(version) + ", written by a newer sluice (this one knows up to " +
                    std::to_string(latest_schema_version()) + "); it was left untouched");
    if (pages == 0) db_->exec("PRAGMA auto_vacuum = INCREMENTAL");  // only possible before the first table
    if (!memory) {
        // The -wal and -shm files take the main file's mode: tighten a file someone loosened first.
        ::chmod(path.c_str(), 0600);
        const std::string mode = db_->scalar_str("PRAGMA journal_mode = WAL");
        if (mode != "wal") throw Error(path + ": could not switch to WAL mode (journal_mode is '" + mode + "')");
    }
    db_->exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA journal_size_limit = 67108864");
    migrate(*db_);

    if (opt_.snapshot_budget > 0) {
        budget_ = opt_.snapshot_budget;
    } else if (auto b = setting("snapshot_budget")) {
        budget_ = std::strtoull(b->c_str(), nullptr, 10);
        if (budget_ == 0) budget_ = kDefaultSnapshotBudget;
    }
}

Store::~Store() = default;

// ---- conversations

namespace {

void check_sampling(const std::string& s) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(s);
    } catch (const nlohmann::json::exception& e) {
        throw Error("sampling settings are not valid JSON: " + std::string(e.what()));
    }
    if (!j.is_object()) throw Error("sampling settings must be a JSON object, got: " + s.substr(0, 80));
}

constexpr const char* kConvColumns =
    "c.id, c.title, c.model_name, c.model_fingerprint, c.system_prompt, c.sampling, c.created_ms, c.updated_ms, "
    "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)";

Conversation read_conversation(const Stmt& st) {
    Conversation c;
    c.id = st.i64(0);
    c.title = st.str(1);
    c.model_name = st.str(2);
    c.model_fingerprint = st.str(3);
    c.system_prompt = st.str(4);
    c.sampling_json = st.str(5);
    c.created_ms = st.i64(6);
    c.updated_ms = st.i64(7);
    c.n_messages = st.i64(8);
    return c;
}

// updated_ms orders the list: kept strictly increasing so two changes in one millisecond still order.
void touch_conversation(Db& db, int64_t id, int64_t t) {
    Stmt st(db, "UPDATE conversations SET updated_ms = max(?2, (SELECT max(updated_ms) + 1 FROM conversations)) WHERE id = ?1");
    st.bind(1, id).bind(2, t);
    st.run();
}

}  // namespace

void require_conversation(Db& db, int64_t id) {
    Stmt st(db, "SELECT 1 FROM conversations WHERE id = ?1");
    st.bind(1, id);
    if (!st.step()) throw Error("there is no conversation " + std::to_string(id));
}

int64_t Store::create_conversation(const Conversation& c) {
    check_sampling(c.sampling_json);
    const int64_t t = now_ms();
    Stmt st(*db_,
            "INSERT INTO conversations (title, model_name, model_fingerprint, system_prompt, sampling, created_ms, updated_ms) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, max(?6, (SELECT COALESCE(max(updated_ms) + 1, 0) FROM conversations)))");
    st.bind(1, c.title).bind(2, c.model_name).bind(3, c.model_fingerprint).bind(4, c.system_prompt).bind(5, c.sampling_json).bind(6, t);
    st.run();
    return db_->last_insert_rowid();
}

std::optional<Conversation> Store::conversation(int64_t id) {
    Stmt st(*db_, std::string("SELECT ") + kConvColumns + " FROM conversations c WHERE c.id = ?1");
    st.bind(1, id);
    if (!st.step()) return std::nullopt;
    return read_conversation(st);
}

std::vector<Conversation> Store::conversations(int64_t limit) {
    Stmt st(*db_, std::string("SELECT ") + kConvColumns + " FROM conversations c ORDER BY c.updated_ms DESC, c.id DESC LIMIT ?1");
    st.bind(1, limit);
    std::vector<Conversation> out;
    while (st.step()) out.push_back(read_conversation(st));
    return out;
}

void Store::update_conversation(const Conversation& c) {
    check_sampling(c.sampling_json);
    Stmt st(*db_,
            "UPDATE conversations SET title = ?2, model_name = ?3, model_fingerprint = ?4, system_prompt = ?5, sampling = ?6 "
            "WHERE id = ?1");
    st.bind(1, c.id).bind(2, c.title).bind(3, c.model_name).bind(4, c.model_fingerprint).bind(5, c.system_prompt);
    st.bind(6, c.sampling_json);
    Txn t(*db_);
    st.run();
    if (db_->changes() == 0) throw Error("there is no conversation " + std::to_string(c.id));
    touch_conversation(*db_, c.id, now_ms());
    t.commit();
}

bool Store::delete_conversation(int64_t id) {
    Stmt st(*db_, "DELETE FROM conversations WHERE id = ?1");  // messages, snapshots: ON DELETE CASCADE
    st.bind(1, id);
    st.run();
    const bool deleted = db_->changes() > 0;
    if (deleted) db_->exec("PRAGMA incremental_vacuum");  // give snapshot pages back to the file system
    return deleted;
}

// ---- messages

namespace {

constexpr const char* kMsgColumns =
    "id, conversation_id, seq, role, content, thinking, n_tokens, prompt_tok_s, decode_tok_s, ttft_s, cache_hit_rate, partial, created_ms";

Message read_message(const Stmt& st) {
    Message m;
    m.id = st.i64(0);
    m.conversation_id = st.i64(1);
    m.seq = st.i64(2);
    m.role = parse_role(st.str(3));
    m.content = st.str(4);
    m.thinking = st.str(5);
    m.n_tokens = st.i64(6);
    m.timings = {st.opt_f64(7), st.opt_f64(8), st.opt_f64(9), st.opt_f64(10)};
    m.partial = st.i64(11) != 0;
    m.created_ms = st.i64(12);
    return m;
}

int64_t insert_message(Db& db, int64_t conv, const Message& m) {
    require_conversation(db, conv);
    const int64_t t = now_ms();
    Stmt st(db,
            "INSERT INTO messages (conversation_id, seq, role, content, thinking, n_tokens, prompt_tok_s, decode_tok_s, ttft_s, "
            "cache_hit_rate, partial, created_ms) "
            "VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
    st.bind(1, conv).bind(2, role_name(m.role)).bind(3, m.content).bind(4, m.thinking).bind(5, m.n_tokens);
    st.bind(6, m.timings.prompt_tok_s).bind(7, m.timings.decode_tok_s).bind(8, m.timings.ttft_s).bind(9, m.timings.cache_hit_rate);
    st.bind(10, int64_t(m.partial)).bind(11, t);
    st.run();
    const int64_t id = db.last_insert_rowid();
    touch_conversation(db, conv, t);
    return id;
}

}  // namespace

int64_t Store::add_message(int64_t conv, const Message& m) {
    Txn t(*db_);
    const int64_t id = insert_message(*db_, conv, m);
    t.commit();
    return id;
}

int64_t Store::begin_message(int64_t conv, Role role) {
    Message m;
    m.role = role;
    m.partial = true;
    return add_message(conv, m);
}

void Store::update_message(int64_t id, std::string_view content, std::string_view thinking) {
    Stmt st(*db_, "UPDATE messages SET content = ?2, thinking = ?3 WHERE id = ?1");
    st.bind(1, id).bind(2, content).bind(3, thinking);
    st.run();
    if (db_->changes() == 0) throw Error("there is no message " + std::to_string(id));
}

void Store::finish_message(int64_t id, const Message& m) {
    Txn t(*db_);
    Stmt st(*db_,
            "UPDATE messages SET content = ?2, thinking = ?3, n_tokens = ?4, prompt_tok_s = ?5, decode_tok_s = ?6, ttft_s = ?7, "
            "cache_hit_rate = ?8, partial = ?9 WHERE id = ?1 RETURNING conversation_id");
    st.bind(1, id).bind(2, m.content).bind(3, m.thinking).bind(4, m.n_tokens);
    st.bind(5, m.timings.prompt_tok_s).bind(6, m.timings.decode_tok_s).bind(7, m.timings.ttft_s).bind(8, m.timings.cache_hit_rate);
    st.bind(9, int64_t(m.partial));
    if (!st.step()) throw Error("there is no message " + std::to_string(id));
    const int64_t conv = st.i64(0);
    st.run();  // finish the statement before the next one
    touch_conversation(*db_, conv, now_ms());
    t.commit();
}

std::vector<Message> Store::messages(int64_t conv) {
    Stmt st(*db_, std::string("SELECT ") + kMsgColumns + " FROM messages WHERE conversation_id = ?1 ORDER BY seq");
    st.bind(1, conv);
    std::vector<Message> out;
    while (st.step()) out.push_back(read_message(st));
    return out;
}

void Store::delete_messages_from(int64_t conv, int64_t seq) {
    Txn t(*db_);
    Stmt st(*db_, "DELETE FROM messages WHERE conversation_id = ?1 AND seq >= ?2");
    st.bind(1, conv).bind(2, seq);
    st.run();
    touch_conversation(*db_, conv, now_ms());
    t.commit();
}

// ---- search

namespace {

// Each word becomes an FTS5 string ("..." with quotes doubled), so user text is never FTS syntax;
// juxtaposed strings mean AND.
std::string fts_query(std::string_view text) {
    std::string q, word;
    auto flush = [&] {
        if (word.empty()) return;
        if (!q.empty()) q += ' ';
        q += '"';
        for (char c : word) q += c == '"' ? std::string("\"\"") : std::string(1, c);
        q += '"';
        word.clear();
    };
    for (char c : text) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') flush();
        else word += c;
    }
    flush();
    return q;
}

}  // namespace

std::vector<SearchHit> Store::search(std::string_view text, int64_t limit) {
    const std::string q = fts_query(text);
    if (q.empty()) return {};
    Stmt st(*db_,
            "SELECT m.conversation_id, m.id, m.seq, c.title, m.role, snippet(messages_fts, -1, '[', ']', '...', 12), m.created_ms "
            "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid JOIN conversations c ON c.id = m.conversation_id "
            "WHERE messages_fts MATCH ?1 ORDER BY rank LIMIT ?2");
    st.bind(1, q).bind(2, limit);
    std::vector<SearchHit> out;
    while (st.step()) {
        SearchHit h;
        h.conversation_id = st.i64(0);
        h.message_id = st.i64(1);
        h.seq = st.i64(2);
        h.title = st.str(3);
        h.role = parse_role(st.str(4));
        h.snippet = st.str(5);
        h.created_ms = st.i64(6);
        out.push_back(std::move(h));
    }
    return out;
}

// ---- settings

std::optional<std::string> Store::setting(std::string_view key) {
    Stmt st(*db_, "SELECT value FROM settings WHERE key = ?1");
    st.bind(1, key);
    if (!st.step()) return std::nullopt;
    return st.str(0);
}

void Store::set_setting(std::string_view key, std::string_view value) {
    Stmt st(*db_, "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    st.bind(1, key).bind(2, value);
    st.run();
}

}  // namespace sluice::history
