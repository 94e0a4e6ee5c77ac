// The conversation history: one SQLite file holding conversations, their messages, settings and
// prefill snapshots (the engine state after a turn, so resuming skips re-processing).
//
//   history::Store store;                           // default_path(), created with mode 0600
//   int64_t c = store.create_conversation({.title = "...", .model_name = "qwen3-30b.gguf",
//       .model_fingerprint = ident.fingerprint, .system_prompt = sys, .sampling_json = R"({"temp":0.7})"});
//   store.add_message(c, {.role = Role::User, .content = text, .n_tokens = 12});
//   int64_t r = store.begin_message(c, Role::Assistant);  // empty, partial: a crash leaves it marked
//   store.update_message(r, text_so_far, thinking_so_far);  // optional, now and then while streaming
//   store.finish_message(r, {.role = Role::Assistant, .content = text, .thinking = th, .n_tokens = n,
//                            .timings = t, .partial = interrupted});
//   save_snapshot(model, store, c, ids, ident);             // history/resume.h
//
// Every call that writes is one transaction, committed before it returns; conversations and
// messages with synchronous=FULL (never lost once the call returned, power cut included), snapshots
// without the fsync (a cache: a power cut may cost the latest one, never the file's integrity). Errors throw sluice::Error (SqlError from
// history/sqlite.h, with SQLite's extended code, for database failures). A Store is one connection
// and is not thread-safe: a second thread opens its own Store on the same path (WAL lets them work
// side by side; a writer waits up to 5 s for another's transaction).
//
// Snapshots are compressed (zstd) and kept within a byte budget (default 2 GiB) by evicting the least
// recently used; messages are never evicted. Deleting a conversation deletes its messages and
// snapshots.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/error.h"

namespace sluice::history {

class Db;

enum class Role { System, User, Assistant, Tool };
const char* role_name(Role r);            // "system", "user", "assistant", "tool"
Role parse_role(std::string_view name);   // Error for anything else

struct Timings {                          // nullopt: not measured
    std::optional<double> prompt_tok_s{}, decode_tok_s{}, ttft_s{};
    std::optional<double> cache_hit_rate{};  // expert cache, 0..1
};

struct Message {
    Role role = Role::User;
    std::string content{};
    std::string thinking{};               // reasoning text, kept apart from the answer
    int64_t n_tokens = 0;
    Timings timings{};
    bool partial = false;                 // an interrupted (or still streaming) reply
    // Set by the store:
    int64_t id = 0, conversation_id = 0;
    int64_t seq = 0;                      // 1, 2, ... in conversation order
    int64_t created_ms = 0;               // Unix time, milliseconds
};

struct Conversation {
    std::string title{};
    std::string model_name{};             // for people: the GGUF's file name
    std::string model_fingerprint{};      // model_fingerprint() in history/resume.h
    std::string system_prompt{};
    std::string sampling_json = "{}";     // the sampling settings, a JSON object
    // Set by the store:
    int64_t id = 0;
    int64_t created_ms = 0, updated_ms = 0;
    int64_t n_messages = 0;
};

struct SearchHit {
    int64_t conversation_id = 0, message_id = 0, seq = 0;
    std::string title;
    Role role = Role::User;
    std::string snippet;                  // the matching words wrapped in [ ]
    int64_t created_ms = 0;
};

struct SnapshotInfo {
    int64_t id = 0, conversation_id = 0;
    std::string model_fingerprint, settings;
    std::vector<int32_t> tokens;          // the token ids the state covers, in order
    uint64_t state_bytes = 0;             // uncompressed
    uint64_t stored_bytes = 0;            // in the database (compressed state + token ids)
    int64_t last_used_ms = 0;
};

class Store {
public:
    struct Options {
        uint64_t snapshot_budget = 0;     // 0: the stored setting (set_snapshot_budget), else 2 GiB
        int zstd_level = 1;
        size_t chunk_bytes = 16u << 20;   // compressed snapshot rows (SQLite blobs stop at 1 GB)
    };
    static constexpr uint64_t kDefaultSnapshotBudget = uint64_t(2) << 30;

    // $XDG_DATA_HOME/sluice/history.db, else ~/.local/share/sluice/history.db.
    static std::string default_path();

    // Opens or creates the database (":memory:" for a private in-memory one), creating missing
    // directories (0700), and migrates its schema forward. A file that is not a sluice history
    // database, or is corrupt, or is from a newer sluice, is an Error and is left untouched.
    explicit Store(const std::string& path = default_path());
    Store(const std::string& path, Options opt);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;
    const std::string& path() const { return path_; }

    // Conversations, most recently updated first.
    int64_t create_conversation(const Conversation& c);
    std::optional<Conversation> conversation(int64_t id);
    std::vector<Conversation> conversations(int64_t limit = -1);
    // Title, model, system prompt and sampling from `c`, for conversation c.id.
    void update_conversation(const Conversation& c);
    bool delete_conversation(int64_t id);  // false if there was none; messages and snapshots go too

    // Messages. add_message stores a finished one; begin/update/finish stream a reply.
    int64_t add_message(int64_t conversation_id, const Message& m);
    int64_t begin_message(int64_t conversation_id, Role role);
    void update_message(int64_t message_id, std::string_view content, std::string_view thinking);
    void finish_message(int64_t message_id, const Message& m);  // m.partial: interrupted
    std::vector<Message> messages(int64_t conversation_id);
    // Deletes message `seq` and all after it (editing or regenerating a turn).
    void delete_messages_from(int64_t conversation_id, int64_t seq);

    // Full-text search (FTS5) over message text and thinking: every word must occur. Best first.
    std::vector<SearchHit> search(std::string_view text, int64_t limit = 50);

    // The conversation as Markdown or as a JSON document (throws if there is no such conversation).
    std::string export_markdown(int64_t conversation_id);
    std::string export_json(int64_t conversation_id);

    // Prefill snapshots. put_snapshot stores `state` (Model::save_state()) for `tokens`, replacing this
    // conversation's snapshots with the same model and settings whose tokens are a prefix of these (a
    // longer state serves any prefix: Model::truncate), then keeps the total within the budget. It
    // returns the id, or 0 when the state alone is larger than the budget (nothing is stored).
    int64_t put_snapshot(int64_t conversation_id, std::string_view model_fingerprint, std::string_view settings,
                         std::span<const int32_t> tokens, std::span<const uint8_t> state);
    std::vector<SnapshotInfo> snapshots(int64_t conversation_id);  // most recently used first
    // The decompressed state; marks the snapshot used. A damaged one is an Error.
    std::vector<uint8_t> load_snapshot(int64_t snapshot_id);
    void delete_snapshot(int64_t snapshot_id);
    uint64_t snapshot_bytes();            // stored bytes of all snapshots
    uint64_t snapshot_budget() const { return budget_; }
    void set_snapshot_budget(uint64_t bytes);  // stored as a setting; evicts at once

    // Small persistent settings (key → text), for the UI too.
    std::optional<std::string> setting(std::string_view key);
    void set_setting(std::string_view key, std::string_view value);

    Db& db() { return *db_; }             // the connection itself, for tests and tools

private:
    void evict_to(uint64_t budget, int64_t keep_id);
    int64_t put_snapshot_txn(int64_t conversation_id, std::string_view model_fingerprint, std::string_view settings,
                             std::span<const int32_t> tokens, std::span<const uint8_t> state);
    std::string path_;
    Options opt_;
    uint64_t budget_ = kDefaultSnapshotBudget;
    std::unique_ptr<Db> db_;
};

}  // namespace sluice::history
