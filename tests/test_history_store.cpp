// History store: round trips on ":memory:" and on files, cascade deletes, search, export, file mode,
// the RAII layer's errors and rollbacks, and files that must be refused and left untouched.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "history/sqlite.h"
#include "history/store.h"
#include "history_test_util.h"

namespace sluice::history {
namespace {

using test::slurp;
using test::tmp_db;

// Each test runs on ":memory:" and on a fresh file.
class StoreTest : public ::testing::TestWithParam<bool> {
protected:
    void SetUp() override { path_ = GetParam() ? tmp_db(::testing::UnitTest::GetInstance()->current_test_info()->name()) : ":memory:"; }
    std::string path_;
};

Conversation sample_conv(const std::string& title) {
    Conversation c;
    c.title = title;
    c.model_name = "tiny.gguf";
    c.model_fingerprint = "gguf1-123-abc";
    c.system_prompt = "You are terse.";
    c.sampling_json = R"({"temperature":0.7,"top_k":40})";
    return c;
}

Message msg(Role r, std::string content, std::string thinking = "") {
    Message m;
    m.role = r;
    m.content = std::move(content);
    m.thinking = std::move(thinking);
    return m;
}

TEST_P(StoreTest, ConversationsRoundTrip) {
    Store s(path_);
    const int64_t a = s.create_conversation(sample_conv("first"));
    const int64_t b = s.create_conversation(sample_conv("second"));
    auto ca = s.conversation(a);
    ASSERT_TRUE(ca);
    EXPECT_EQ(ca->title, "first");
    EXPECT_EQ(ca->model_name, "tiny.gguf");
    EXPECT_EQ(ca->model_fingerprint, "gguf1-123-abc");
    EXPECT_EQ(ca->system_prompt, "You are terse.");
    EXPECT_EQ(ca->sampling_json, R"({"temperature":0.7,"top_k":40})");
    EXPECT_GT(ca->created_ms, 1600000000000);
    EXPECT_FALSE(s.conversation(999));

    s.add_message(a, msg(Role::User, "hello"));  // a becomes the most recently updated
    auto list = s.conversations();
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].id, a);
    EXPECT_EQ(list[0].n_messages, 1);
    EXPECT_EQ(list[1].id, b);
    EXPECT_EQ(s.conversations(1).size(), 1u);

    ca->title = "renamed";
    ca->sampling_json = "{}";
    s.update_conversation(*ca);
    EXPECT_EQ(s.conversation(a)->title, "renamed");
    EXPECT_EQ(s.conversation(a)->sampling_json, "{}");
    Conversation ghost = *ca;
    ghost.id = 777;
    EXPECT_THROW(s.update_conversation(ghost), Error);
    ca->sampling_json = "{not json";
    EXPECT_THROW(s.update_conversation(*ca), Error);
    ca->sampling_json = "[1,2]";
    EXPECT_THROW(s.update_conversation(*ca), Error);
}

TEST_P(StoreTest, MessagesRoundTrip) {
    Store s(path_);
    const int64_t c = s.create_conversation(sample_conv("m"));
    s.add_message(c, msg(Role::System, "sys"));
    Message u = msg(Role::User, "Ünïcödé ✓ and \"quotes\"\nsecond line");
    u.n_tokens = 17;
    s.add_message(c, u);
    Message r = msg(Role::Assistant, "answer", "let me think");
    r.n_tokens = 42;
    r.timings = {12.5, 3.25, 0.75, 0.875};
    const int64_t rid = s.add_message(c, r);

    const auto ms = s.messages(c);
    ASSERT_EQ(ms.size(), 3u);
    EXPECT_EQ(ms[0].role, Role::System);
    EXPECT_EQ(ms[1].content, u.content);
    EXPECT_EQ(ms[1].n_tokens, 17);
    EXPECT_FALSE(ms[1].timings.decode_tok_s);  // not measured stays not measured
    EXPECT_EQ(ms[2].id, rid);
    EXPECT_EQ(ms[2].conversation_id, c);
    EXPECT_EQ(ms[2].seq, 3);
    EXPECT_EQ(ms[2].thinking, "let me think");
    EXPECT_EQ(*ms[2].timings.prompt_tok_s, 12.5);
    EXPECT_EQ(*ms[2].timings.decode_tok_s, 3.25);
    EXPECT_EQ(*ms[2].timings.ttft_s, 0.75);
    EXPECT_EQ(*ms[2].timings.cache_hit_rate, 0.875);
    EXPECT_FALSE(ms[2].partial);
    EXPECT_THROW(s.add_message(12345, u), Error);
}

TEST_P(StoreTest, StreamedReplyIsPartialUntilFinished) {
    Store s(path_);
    const int64_t c = s.create_conversation(sample_conv("stream"));
    s.add_message(c, msg(Role::User, "q"));
    const int64_t id = s.begin_message(c, Role::Assistant);
    EXPECT_TRUE(s.messages(c)[1].partial);
    s.update_message(id, "half an ans", "hmm");
    EXPECT_EQ(s.messages(c)[1].content, "half an ans");
    EXPECT_TRUE(s.messages(c)[1].partial);
    Message done = msg(Role::Assistant, "half an answer", "hmm");
    done.n_tokens = 4;
    done.partial = true;  // the user interrupted
    s.finish_message(id, done);
    auto m = s.messages(c)[1];
    EXPECT_TRUE(m.partial);
    EXPECT_EQ(m.content, "half an answer");
    EXPECT_EQ(m.n_tokens, 4);
    done.partial = false;
    s.finish_message(id, done);
    EXPECT_FALSE(s.messages(c)[1].partial);
    EXPECT_THROW(s.finish_message(999, done), Error);
    EXPECT_THROW(s.update_message(999, "x", ""), Error);

    s.add_message(c, msg(Role::User, "again"));
    s.add_message(c, msg(Role::Assistant, "again answer"));
    s.delete_messages_from(c, 3);  // regenerate from the second question
    ASSERT_EQ(s.messages(c).size(), 2u);
    const int64_t nid = s.add_message(c, msg(Role::User, "new"));
    EXPECT_EQ(s.messages(c).back().id, nid);
    EXPECT_EQ(s.messages(c).back().seq, 3);
}

TEST_P(StoreTest, DeletingAConversationCascades) {
    Store s(path_);
    const int64_t a = s.create_conversation(sample_conv("a"));
    const int64_t b = s.create_conversation(sample_conv("b"));
    s.add_message(a, msg(Role::User, "zebra in a"));
    s.add_message(b, msg(Role::User, "zebra in b"));
    const std::vector<int32_t> toks = {1, 2, 3};
    const std::vector<uint8_t> state(1000, 7);
    ASSERT_GT(s.put_snapshot(a, "fp", "set", toks, state), 0);
    ASSERT_GT(s.put_snapshot(b, "fp", "set", toks, state), 0);
    EXPECT_EQ(s.search("zebra").size(), 2u);

    EXPECT_TRUE(s.delete_conversation(a));
    EXPECT_FALSE(s.delete_conversation(a));
    EXPECT_FALSE(s.conversation(a));
    EXPECT_TRUE(s.messages(a).empty());
    EXPECT_TRUE(s.snapshots(a).empty());
    EXPECT_EQ(s.db().scalar_i64("SELECT count(*) FROM messages WHERE conversation_id = " + std::to_string(a)), 0);
    EXPECT_EQ(s.db().scalar_i64("SELECT count(*) FROM snapshots"), 1);
    EXPECT_EQ(s.db().scalar_i64("SELECT count(*) FROM snapshot_chunks c JOIN snapshots s ON s.id = c.snapshot_id"),
              s.db().scalar_i64("SELECT count(*) FROM snapshot_chunks"));
    const auto hits = s.search("zebra");
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].conversation_id, b);
    s.db().exec("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')");
    Stmt fk(s.db(), "PRAGMA foreign_key_check");
    EXPECT_FALSE(fk.step()) << "no orphans";
}

TEST_P(StoreTest, FullTextSearch) {
    Store s(path_);
    const int64_t a = s.create_conversation(sample_conv("Rust lifetimes"));
    const int64_t b = s.create_conversation(sample_conv("Cooking"));
    s.add_message(a, msg(Role::User, "How do lifetimes work in Rust?"));
    s.add_message(a, msg(Role::Assistant, "A lifetime names a region of code.", "The user asks about the borrow checker."));
    s.add_message(b, msg(Role::User, "Crème brûlée needs a blowtorch"));
    s.add_message(b, msg(Role::Assistant, "Or a very hot grill: caramelise the sugar."));

    auto hits = s.search("lifetimes rust");
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].conversation_id, a);
    EXPECT_EQ(hits[0].title, "Rust lifetimes");
    EXPECT_EQ(hits[0].role, Role::User);
    EXPECT_NE(hits[0].snippet.find("[Rust]"), std::string::npos) << hits[0].snippet;
    EXPECT_EQ(s.search("borrow checker").size(), 1u) << "thinking text is searched";
    EXPECT_EQ(s.search("creme brulee").size(), 1u) << "diacritics folded";
    EXPECT_EQ(s.search("rust sugar").size(), 0u) << "every word must occur";
    EXPECT_TRUE(s.search("   ").empty());
    // User text is never FTS syntax.
    for (const char* q : {"\"", "a\"b", "NEAR(", "*", "rust OR", "-x", "col:val", "(", "^"})
        EXPECT_NO_THROW(s.search(q)) << q;
    // Edits are indexed, old text forgotten.
    const int64_t id = s.begin_message(b, Role::Assistant);
    s.update_message(id, "pistachio", "");
    EXPECT_EQ(s.search("pistachio").size(), 1u);
    s.update_message(id, "walnut", "");
    EXPECT_EQ(s.search("pistachio").size(), 0u);
    EXPECT_EQ(s.search("walnut").size(), 1u);
}

TEST_P(StoreTest, Settings) {
    Store s(path_);
    EXPECT_FALSE(s.setting("theme"));
    s.set_setting("theme", "dark");
    s.set_setting("theme", "light");
    EXPECT_EQ(*s.setting("theme"), "light");
    EXPECT_EQ(s.snapshot_budget(), Store::kDefaultSnapshotBudget);
    s.set_snapshot_budget(12345);
    EXPECT_EQ(s.snapshot_budget(), 12345u);
    EXPECT_THROW(s.set_snapshot_budget(0), Error);
}

TEST_P(StoreTest, ExportMarkdownAndJson) {
    Store s(path_);
    const int64_t c = s.create_conversation(sample_conv("Export me"));
    s.add_message(c, msg(Role::User, "What is 2+2?"));
    Message r = msg(Role::Assistant, "4", "simple arithmetic");
    r.n_tokens = 3;
    r.timings.decode_tok_s = 10.0;
    r.timings.ttft_s = 0.5;
    s.add_message(c, r);
    const int64_t p = s.begin_message(c, Role::Assistant);
    s.update_message(p, "cut sho", "");

    const std::string md = s.export_markdown(c);
    for (const char* want : {"# Export me\n", "- Model: tiny.gguf (`gguf1-123-abc`)", "## System prompt\n\nYou are terse.",
                             "## User\n\nWhat is 2+2?\n", "## Assistant\n\n<details><summary>Thinking</summary>\n\nsimple arithmetic",
                             "</details>\n\n4\n", "3 tokens", "decode 10.0 tok/s", "first token 0.50 s", "cut sho\n\n*(interrupted",
                             "`{\"temperature\":0.7,\"top_k\":40}`"})
        EXPECT_NE(md.find(want), std::string::npos) << "missing: " << want << "\n" << md;

    const auto j = nlohmann::json::parse(s.export_json(c));
    EXPECT_EQ(j["format"], "sluice-conversation");
    EXPECT_EQ(j["title"], "Export me");
    EXPECT_EQ(j["model"]["fingerprint"], "gguf1-123-abc");
    EXPECT_EQ(j["sampling"]["top_k"], 40) << "sampling stays an object";
    EXPECT_EQ(j["system_prompt"], "You are terse.");
    ASSERT_EQ(j["messages"].size(), 3u);
    EXPECT_EQ(j["messages"][1]["thinking"], "simple arithmetic");
    EXPECT_EQ(j["messages"][1]["timings"]["decode_tok_s"], 10.0);
    EXPECT_FALSE(j["messages"][0].contains("thinking"));
    EXPECT_FALSE(j["messages"][0].contains("timings"));
    EXPECT_EQ(j["messages"][2]["partial"], true);
    EXPECT_EQ(j["messages"][2]["content"], "cut sho");
    EXPECT_THROW(s.export_json(999), Error);
    EXPECT_THROW(s.export_markdown(999), Error);

    // A reply cut inside a UTF-8 character still exports.
    s.update_message(p, std::string("caf\xc3", 4), "");
    EXPECT_NO_THROW(nlohmann::json::parse(s.export_json(c)));
}

INSTANTIATE_TEST_SUITE_P(MemoryAndFile, StoreTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "File" : "Memory"; });

// ---- files

TEST(StoreFile, PrivateModeWalAndPersistence) {
    const std::string dir = test::tmp_dir() + "/xdg-" + std::to_string(getpid());
    std::filesystem::remove_all(dir);
    ::setenv("XDG_DATA_HOME", dir.c_str(), 1);
    const std::string path = Store::default_path();
    EXPECT_EQ(path, dir + "/sluice/history.db");
    int64_t c = 0;
    {
        Store s;  // default path: directories created
        c = s.create_conversation(sample_conv("persist"));
        s.add_message(c, msg(Role::User, "still here?"));
        EXPECT_EQ(s.db().scalar_str("PRAGMA journal_mode"), "wal");
        EXPECT_EQ(s.db().scalar_i64("PRAGMA foreign_keys"), 1);
        EXPECT_EQ(s.db().scalar_i64("PRAGMA synchronous"), 2);  // FULL
        EXPECT_EQ(s.db().scalar_i64("PRAGMA auto_vacuum"), 2);  // INCREMENTAL
        struct stat st {};
        ASSERT_EQ(::stat((path + "-wal").c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0600u) << "the WAL holds messages too";
    }
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat((dir + "/sluice").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    Store again(path);
    EXPECT_EQ(again.messages(c).at(0).content, "still here?");
    ::unsetenv("XDG_DATA_HOME");
}

TEST(StoreFile, LoosenedModeIsTightened) {
    const std::string path = tmp_db("loose");
    { Store s(path); }
    ::chmod(path.c_str(), 0644);
    { Store s(path); }
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A file that is not ours: a clear error, and not one byte changed.
TEST(StoreFile, ForeignOrCorruptFilesAreRefusedAndLeftAlone) {
    struct Case {
        std::string name, bytes, expect;
    };
    std::string sqlite_garbage = std::string("SQLite format 3\0", 16) + std::string(4080, '\x5a');
    std::vector<Case> cases = {
        {"text", "these are my notes, not a database\n", "not a usable SQLite database"},
        {"garbage-header", sqlite_garbage, "not a usable SQLite database"},
    };
    // Another program's database, and one from a newer sluice.
    for (auto [name, sql, expect] : {std::tuple{"foreign", "CREATE TABLE notes (x)", "not a sluice history"},
                                     std::tuple{"newer", "PRAGMA user_version = 99", "newer sluice"}}) {
        const std::string p = tmp_db(name);
        {
            Db db(p);
            db.exec(sql);
        }
        cases.push_back({name, slurp(p), expect});
    }
    for (const Case& c : cases) {
        const std::string p = tmp_db("bad-" + c.name);
        { std::ofstream(p, std::ios::binary) << c.bytes; }
        try {
            Store s(p);
            ADD_FAILURE() << c.name << " was accepted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << c.name << ": " << e.what();
            EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "names the file: " << e.what();
        }
        EXPECT_EQ(slurp(p), c.bytes) << c.name << " was modified";
        EXPECT_FALSE(std::filesystem::exists(p + "-wal")) << c.name;
    }
    EXPECT_THROW(Store(test::tmp_dir()), Error) << "a directory";
}

// A database whose pages (not its header) are damaged: opening or reading fails with SQLite's code.
TEST(StoreFile, DamagedPagesGiveSqliteErrors) {
    const std::string p = tmp_db("damaged");
    {
        Store s(p);
        const int64_t c = s.create_conversation(sample_conv("x"));
        for (int i = 0; i < 200; ++i) s.add_message(c, msg(Role::User, std::string(500, char('a' + i % 26))));
        s.db().exec("PRAGMA wal_checkpoint(TRUNCATE)");
    }
    std::string bytes = slurp(p);
    ASSERT_GT(bytes.size(), 16384u);
    for (size_t i = 4096; i < bytes.size(); i += 7) bytes[i] = char(bytes[i] ^ 0x5a);  // every page but the first
    { std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes; }
    try {
        Store s(p);
        for (const auto& c : s.conversations()) s.messages(c.id);
        s.search("aaaa");
        ADD_FAILURE() << "damage went unnoticed";
    } catch (const SqlError& e) {
        EXPECT_EQ(e.code() & 0xff, SQLITE_CORRUPT) << e.what();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("malformed"), std::string::npos) << e.what();
    }
}

// ---- the RAII layer

TEST(Sqlite, ErrorsCarryCodeAndSql) {
    Db db(":memory:");
    try {
        db.exec("INSERT INTO nowhere VALUES (1)");
        FAIL();
    } catch (const SqlError& e) {
        EXPECT_EQ(e.code(), SQLITE_ERROR);
        EXPECT_NE(e.sql().find("nowhere"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("no such table"), std::string::npos) << e.what();
    }
    db.exec("PRAGMA foreign_keys = ON; CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p INTEGER REFERENCES p(id))");
    try {
        db.exec("INSERT INTO c VALUES (5)");
        FAIL();
    } catch (const SqlError& e) {
        EXPECT_EQ(e.code(), SQLITE_CONSTRAINT_FOREIGNKEY) << "the extended code";
        EXPECT_NE(std::string(e.what()).find("SQLITE_CONSTRAINT_FOREIGNKEY"), std::string::npos) << e.what();
    }
    Stmt st(db, "SELECT ?1 + ?2");
    st.bind(1, int64_t(2)).bind(2, int64_t(40));
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.i64(0), 42);
    EXPECT_FALSE(st.step());
}

TEST(Sqlite, TransactionRollsBackUnlessCommitted) {
    Db db(":memory:");
    db.exec("CREATE TABLE t (x)");
    {
        Txn t(db);
        db.exec("INSERT INTO t VALUES (1)");
    }
    EXPECT_EQ(db.scalar_i64("SELECT count(*) FROM t"), 0);
    try {
        Txn t(db);
        db.exec("INSERT INTO t VALUES (1)");
        throw Error("boom");
    } catch (const Error&) {
    }
    EXPECT_EQ(db.scalar_i64("SELECT count(*) FROM t"), 0);
    {
        Txn t(db);
        db.exec("INSERT INTO t VALUES (1)");
        t.commit();
    }
    EXPECT_EQ(db.scalar_i64("SELECT count(*) FROM t"), 1);
}

}  // namespace
}  // namespace sluice::history
