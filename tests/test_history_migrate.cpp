// Schema migrations: a database written at every earlier version (its CREATE statements frozen here as
// they were released, with data in them) opens, migrates to the latest version, keeps its data, and
// ends with exactly the schema of a freshly created database. When a schema version is added, freeze
// the previous one here.
#include <gtest/gtest.h>

#include "history/schema.h"
#include "history/sqlite.h"
#include "history/store.h"
#include "history_test_util.h"

namespace sluice::history {
namespace {

// ---- frozen schemas (never edit: they are what old files contain)

const char* kV1 = R"sql(
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
)sql";

const char* kV2Added = R"sql(
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
)sql";

// Everything a database at `version` contains (the latest is not frozen: it is what the code makes).
std::string frozen_schema(int version) {
    std::string s;
    if (version >= 1) s += kV1;
    if (version >= 2) s += kV2Added;
    return s;
}
constexpr int kFrozen = 2;  // the newest version frozen above

// Rows written with that version's columns: two conversations, messages (one partial, one with
// thinking), a snapshot with one chunk.
void fill(Db& db) {
    db.exec(R"sql(
INSERT INTO conversations VALUES (1, 'Old chat', 'm.gguf', 'gguf1-1-ff', 'be brief', '{"temperature":0.5}', 1000, 2000);
INSERT INTO conversations VALUES (2, 'Other', '', '', '', '{}', 1500, 1500);
INSERT INTO messages VALUES (1, 1, 1, 'user', 'tell me about aardvarks', '', 5, NULL, NULL, NULL, NULL, 0, 1100);
INSERT INTO messages VALUES (2, 1, 2, 'assistant', 'They eat termites.', 'recall biology', 4, 100.0, 10.0, 0.25, 0.5, 0, 1200);
INSERT INTO messages VALUES (3, 1, 3, 'assistant', 'Interrupt', '', 1, NULL, NULL, NULL, NULL, 1, 1300);
INSERT INTO messages VALUES (4, 2, 1, 'user', 'nothing here', '', 2, NULL, NULL, NULL, NULL, 0, 1600);
INSERT INTO snapshots VALUES (1, 1, 'gguf1-1-ff', 'arch=x', 2, 0, x'0100000002000000', 16, 20, 1300, 1300);
INSERT INTO snapshot_chunks VALUES (1, 0, x'00112233');
)sql");
}

std::vector<std::string> schema_of(Db& db) {
    Stmt st(db, "SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_schema ORDER BY type, name");
    std::vector<std::string> out;
    while (st.step()) out.push_back(st.str(0));
    return out;
}

TEST(Migrate, VersionsAreConsecutive) {
    int v = 0;
    for (const Migration& m : migrations()) EXPECT_EQ(m.version, ++v) << m.what;
    EXPECT_EQ(latest_schema_version(), v);
    EXPECT_GE(latest_schema_version(), kFrozen + 1) << "freeze each released version here";
}

TEST(Migrate, FromEveryEarlierVersion) {
    std::vector<std::string> fresh;
    {
        Store s(":memory:");
        fresh = schema_of(s.db());
        EXPECT_EQ(s.db().scalar_i64("PRAGMA user_version"), latest_schema_version());
    }
    for (int v = 1; v <= kFrozen; ++v) {
        SCOPED_TRACE("from version " + std::to_string(v));
        const std::string path = test::tmp_db("v" + std::to_string(v));
        {
            Db db(path);
            db.exec(frozen_schema(v));
            db.exec("PRAGMA user_version = " + std::to_string(v));
            fill(db);
        }
        Store s(path);
        EXPECT_EQ(s.db().scalar_i64("PRAGMA user_version"), latest_schema_version());
        EXPECT_EQ(schema_of(s.db()), fresh) << "a migrated database has the schema of a new one";

        const auto convs = s.conversations();
        ASSERT_EQ(convs.size(), 2u);
        EXPECT_EQ(convs[0].title, "Old chat");
        EXPECT_EQ(convs[0].sampling_json, R"({"temperature":0.5})");
        const auto ms = s.messages(1);
        ASSERT_EQ(ms.size(), 3u);
        EXPECT_EQ(ms[1].thinking, "recall biology");
        EXPECT_EQ(*ms[1].timings.ttft_s, 0.25);
        EXPECT_TRUE(ms[2].partial);
        EXPECT_EQ(s.snapshots(1).size(), 1u);
        EXPECT_EQ(s.snapshots(1)[0].tokens, (std::vector<int32_t>{1, 2}));
        // Old messages are searchable, new ones too; the new settings table works.
        ASSERT_EQ(s.search("aardvarks").size(), 1u);
        EXPECT_EQ(s.search("biology").size(), 1u);
        s.add_message(2, {.role = Role::Assistant, .content = "pangolins"});
        EXPECT_EQ(s.search("pangolins").size(), 1u);
        s.set_setting("k", "v");
        EXPECT_EQ(*s.setting("k"), "v");
        s.db().exec("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')");
        EXPECT_TRUE(s.delete_conversation(1));
        EXPECT_EQ(s.db().scalar_i64("SELECT count(*) FROM snapshot_chunks"), 0);
    }
}

TEST(Migrate, FreshFileAndReopen) {
    const std::string path = test::tmp_db("fresh");
    { Store s(path); }
    Store s(path);  // already latest: nothing to do
    EXPECT_EQ(s.db().scalar_i64("PRAGMA user_version"), latest_schema_version());
}

// A step that fails leaves the database at the version before it, data intact, and says why.
TEST(Migrate, FailedStepRollsBack) {
    const std::string path = test::tmp_db("failstep");
    {
        Db db(path);
        db.exec(frozen_schema(1));
        db.exec("PRAGMA user_version = 1");
        fill(db);
        db.exec("CREATE TABLE messages_fts (x)");  // in the way of version 2
    }
    try {
        Store s(path);
        FAIL() << "migration should fail";
    } catch (const SqlError& e) {
        EXPECT_NE(std::string(e.what()).find("messages_fts"), std::string::npos) << e.what();
        EXPECT_NE(e.sql().find("CREATE VIRTUAL TABLE"), std::string::npos);
    }
    Db db(path);
    EXPECT_EQ(db.scalar_i64("PRAGMA user_version"), 1);
    EXPECT_EQ(db.scalar_i64("SELECT count(*) FROM messages"), 4);
    EXPECT_EQ(db.scalar_i64("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'messages_fts_%'"), 0);
}

}  // namespace
}  // namespace sluice::history
