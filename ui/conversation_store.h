// Where the chat keeps conversations: the small interface the UI needs. make_memory_store() keeps
// everything in this process; make_sqlite_store() (ui/sqlite_store.h) is the history database.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/session.h"

namespace sluice::ui {

struct ReplyFigures {           // a reply's figures as stored (nullopt: not measured)
    std::optional<double> prompt_tok_s, decode_tok_s, ttft_s;
    std::optional<double> cache_hit_rate;  // expert cache, 0..1
    std::string finish;         // "end of turn", "stopped", ... (a database keeps only "stopped")
};

struct StoredMessage {
    std::string role;           // "user", "assistant"
    std::string content, thinking;
    int64_t n_tokens = 0;
    ReplyFigures figures;
    bool partial = false;       // a stopped reply
    int64_t seq = 0;            // set by the store: 1, 2, ... in order
};

struct ConversationInfo {
    int64_t id = 0;             // set by the store
    std::string title, model_name, system_prompt;
    int64_t updated_ms = 0, n_messages = 0;  // set by the store
    std::string model_path{};   // on create: lets a database note which model this was
};

class ConversationStore {
public:
    virtual ~ConversationStore() = default;
    virtual std::vector<ConversationInfo> list() = 0;  // most recently updated first
    virtual std::optional<ConversationInfo> get(int64_t id) = 0;
    virtual int64_t create(const ConversationInfo& c) = 0;
    virtual void update(const ConversationInfo& c) = 0;  // title and system prompt of c.id
    virtual bool remove(int64_t id) = 0;
    virtual std::vector<StoredMessage> messages(int64_t id) = 0;
    virtual int64_t append(int64_t id, const StoredMessage& m) = 0;  // returns its seq
    virtual void erase_from(int64_t id, int64_t seq) = 0;            // message seq and all after it
    // The conversation as a document ("md" or "json"); "" : this store leaves it to the UI.
    virtual std::string export_text(int64_t id, std::string_view format) = 0;
    // Prefill snapshots for the engine thread (ChatSessionOptions::snapshots); null: none kept.
    virtual std::shared_ptr<SnapshotStore> snapshot_store() = 0;
    // Small settings ("last_model").
    virtual std::optional<std::string> setting(std::string_view key) = 0;
    virtual void set_setting(std::string_view key, std::string_view value) = 0;
};

// In this process only; keeps no snapshots (they would double the KV cache in memory).
std::unique_ptr<ConversationStore> make_memory_store();

}  // namespace sluice::ui
