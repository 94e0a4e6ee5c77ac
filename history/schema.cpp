#include "history/schema.h"

#include <string>

#include "history/sqlite.h"

namespace sluice::history {

namespace {

// Times are Unix milliseconds. Token ids are int32 little-endian blobs.
const Migration kMigrations[] = {
    {1, "conversations, messages, prefill snapshots", R"sql(
CREATE TABLE conversations (
    id                INTEGER PRIMARY KEY,
    title             TEXT NOT NULL DEFAULT '',
    model_name        TEXT NOT NULL DEFAULT '',
    model_fingerprint TEXT NOT NULL DEFAULT '',
    system_prompt     TEXT NOT NULL DEFAULT '',
    sampling          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(sampling)),
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL
);
CREATE INDEX conversations_updated ON conversations(updated_ms);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content         TEXT NOT NULL DEFAULT '',
    thinking        TEXT NOT NULL DEFAULT '',
    n_tokens        INTEGER NOT NULL DEFAULT 0,
    prompt_tok_s    REAL,
    decode_tok_s    REAL,
    ttft_s          REAL,
    cache_hit_rate  REAL,
    partial         INTEGER NOT NULL DEFAULT 0 CHECK (partial IN (0, 1)),
    created_ms      INTEGER NOT NULL,
    UNIQUE (conversation_id, seq)
);

-- One row per saved engine state; the compressed state itself is in snapshot_chunks.
CREATE TABLE snapshots (
    id                INTEGER PRIMARY KEY,
    conversation_id   INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    model_fingerprint TEXT NOT NULL,
    settings          TEXT NOT NULL,
    n_tokens          INTEGER NOT NULL,
    prefix_hash       INTEGER NOT NULL,  -- xxh64 of the token ids
    tokens            BLOB NOT NULL,
    state_bytes       INTEGER NOT NULL,  -- uncompressed
    stored_bytes      INTEGER NOT NULL,  -- compressed state + tokens
    created_ms        INTEGER NOT NULL,
    last_used_ms      INTEGER NOT NULL,
    UNIQUE (conversation_id, model_fingerprint, settings, prefix_hash)
);
CREATE INDEX snapshots_lru ON snapshots(last_used_ms);

-- A zstd frame cut into rows: SQLite blobs stop at 1 GB and a state can be larger.
CREATE TABLE snapshot_chunks (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (snapshot_id, seq)
);
)sql"},
    {2, "full-text search over messages (FTS5), filled from existing messages", R"sql(
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, thinking, content = 'messages', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content, thinking) VALUES (new.id, new.content, new.thinking);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, thinking) VALUES ('delete', old.id, old.content, old.thinking);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, thinking ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, thinking) VALUES ('delete', old.id, old.content, old.thinking);
    INSERT INTO messages_fts(rowid, content, thinking) VALUES (new.id, new.content, new.thinking);
END;
INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
)sql"},
    {3, "settings (key → text)", R"sql(
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
)sql"},
};

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }
int latest_schema_version() { return kMigrations[std::size(kMigrations) - 1].version; }

void migrate(Db& db) {
    const int latest = latest_schema_version();
    const int64_t have = db.scalar_i64("PRAGMA user_version");
    if (have > latest)
        throw Error(db.path() + " has schema version " + std::to_string(have) + ", written by a newer sluice (this one knows up to " +
                    std::to_string(latest) + "); not touching it");
    for (const Migration& m : kMigrations) {
        if (m.version <= have) continue;
        Txn t(db);
        // Another process may have migrated while we waited for the write lock.
        const int64_t now = db.scalar_i64("PRAGMA user_version");
        if (now >= m.version) continue;
        if (now != m.version - 1)
            throw Error(db.path() + ": schema version " + std::to_string(now) + " cannot be migrated to " + std::to_string(m.version));
        db.exec(m.sql);
        db.exec("PRAGMA user_version = " + std::to_string(m.version));
        t.commit();
    }
}

}  // namespace sluice::history
