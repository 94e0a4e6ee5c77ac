// The chat's SQLite store (ui/sqlite_store.h) on temporary database files: conversations, messages
// with their figures and the partial mark, settings and export round-trip through a reopened file;
// the engine-side snapshot store saves and restores a real model's state (bit-identical logits),
// falls back with a notice on a mismatch or a damaged snapshot, respects the budget; and a chat
// session resumes a conversation from the database in a "new process" without re-processing it.
#include <gtest/gtest.h>

#include <cstring>

#include "engine/model.h"
#include "engine/session.h"
#include "history/sqlite.h"
#include "history/store.h"
#include "history_test_util.h"
#include "ui/sqlite_store.h"

namespace sluice::ui {
namespace {

using namespace std::chrono_literals;
using history::test::tmp_db;

const std::string kModel = std::string(SLUICE_FIXTURES) + "/qwen3/moe_a.gguf";

StoredMessage msg(std::string role, std::string content) {
    StoredMessage m;
    m.role = std::move(role);
    m.content = std::move(content);
    return m;
}

TEST(UiSqliteStore, ConversationsMessagesAndSettingsSurviveReopening) {
    const std::string db = tmp_db("ui-store");
    int64_t a = 0, b = 0;
    {
        auto s = make_sqlite_store(db);
        EXPECT_TRUE(s->list().empty());
        ConversationInfo ci;
        ci.title = "first";
        ci.model_name = "moe_a.gguf";
        ci.model_path = kModel;
        a = s->create(ci);
        ci.title = "second";
        ci.system_prompt = "be brief";
        b = s->create(ci);
        EXPECT_NE(a, b);
        EXPECT_EQ(s->append(a, msg("user", "q1")), 1);
        StoredMessage r = msg("assistant", "r1");
        r.thinking = "hmm";
        r.n_tokens = 7;
        r.figures = {12.5, 30.25, 0.5, 0.75, "stopped"};
        r.partial = true;
        EXPECT_EQ(s->append(a, r), 2);
        EXPECT_EQ(s->append(a, msg("user", "q2")), 3);
        EXPECT_EQ(s->list().front().id, a);  // most recently updated first
        s->erase_from(a, 3);
        s->set_setting("last_model", "/models/m.gguf");
    }
    auto s = make_sqlite_store(db);
    const auto list = s->list();
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].id, a);
    EXPECT_EQ(list[0].n_messages, 2);
    EXPECT_EQ(s->get(b)->system_prompt, "be brief");
    const auto msgs = s->messages(a);
    ASSERT_EQ(msgs.size(), 2u);
    EXPECT_EQ(msgs[0].role, "user");
    EXPECT_EQ(msgs[0].content, "q1");
    EXPECT_FALSE(msgs[0].partial);
    const StoredMessage& r = msgs[1];
    EXPECT_EQ(r.role, "assistant");
    EXPECT_EQ(r.thinking, "hmm");
    EXPECT_EQ(r.n_tokens, 7);
    EXPECT_EQ(r.seq, 2);
    EXPECT_TRUE(r.partial);
    EXPECT_EQ(r.figures.prompt_tok_s, 12.5);
    EXPECT_EQ(r.figures.decode_tok_s, 30.25);
    EXPECT_EQ(r.figures.ttft_s, 0.5);
    EXPECT_EQ(r.figures.cache_hit_rate, 0.75);
    EXPECT_EQ(r.figures.finish, "stopped");
    EXPECT_EQ(s->setting("last_model"), "/models/m.gguf");
    EXPECT_FALSE(s->setting("nothing"));

    // /rename and /system go to the row; the fingerprint of the model was noted on create.
    ConversationInfo ci = *s->get(b);
    ci.title = "renamed";
    ci.system_prompt = "";
    s->update(ci);
    EXPECT_EQ(s->get(b)->title, "renamed");
    EXPECT_EQ(s->get(b)->system_prompt, "");
    {
        history::Store raw(db);
        EXPECT_EQ(raw.conversation(a)->model_fingerprint.rfind("gguf1-", 0), 0u) << raw.conversation(a)->model_fingerprint;
    }

    // /export is the store's: with figures and the partial mark.
    const std::string md = s->export_text(a, "md");
    EXPECT_NE(md.find("# first"), std::string::npos) << md;
    EXPECT_NE(md.find("interrupted"), std::string::npos) << md;
    EXPECT_NE(md.find("expert cache hits 75%"), std::string::npos) << md;
    const std::string js = s->export_text(a, "json");
    EXPECT_NE(js.find("\"cache_hit_rate\": 0.75"), std::string::npos) << js;

    // /delete
    EXPECT_TRUE(s->remove(b));
    EXPECT_FALSE(s->remove(b));
    EXPECT_FALSE(s->get(b));
    EXPECT_EQ(s->list().size(), 1u);
}

TEST(UiSqliteStore, AForeignFileIsAnErrorAndLeftAlone) {
    const std::string db = tmp_db("ui-foreign");
    {
        std::ofstream f(db);
        f << "not a database at all, but somebody's notes\n";
    }
    EXPECT_THROW(make_sqlite_store(db), Error);
    EXPECT_EQ(history::test::slurp(db), "not a database at all, but somebody's notes\n");
}

// ---- the engine side: snapshots of a real model

ModelOptions opts(int64_t experts = 0) {
    ModelOptions o;
    o.n_ctx = 128;
    o.n_threads = 1;
    o.experts_per_token = experts;
    return o;
}

const std::vector<int32_t> kConv = {1, 5, 9, 200, 31, 77, 4, 18, 250, 3, 66, 90};
const std::vector<int32_t> kNext = {12, 44, 7};

std::vector<float> continue_with(Model& m, std::span<const int32_t> rest) { return m.forward_tokens(rest, false); }

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

int64_t new_conversation(ConversationStore& s) {
    ConversationInfo ci;
    ci.title = "t";
    return s.create(ci);
}

TEST(UiSqliteStore, SnapshotsRestoreTheStateBitExactly) {
    const std::string db = tmp_db("ui-snap");
    auto store = make_sqlite_store(db);
    const int64_t conv = new_conversation(*store);
    std::vector<int32_t> all = kConv;
    all.insert(all.end(), kNext.begin(), kNext.end());

    auto a = load_model(kModel, opts());
    a->forward_tokens(kConv, false);
    ASSERT_TRUE(store->snapshot_store()->save(*a, opts(), conv, kConv));
    const std::vector<float> want = continue_with(*a, kNext);

    // A new store (another process) on the same file and a fresh model.
    auto store2 = make_sqlite_store(db);
    auto b = load_model(kModel, opts());
    auto r = store2->snapshot_store()->restore(*b, opts(), conv, all, 0);
    EXPECT_TRUE(r.touched);
    EXPECT_EQ(r.tokens, int64_t(kConv.size()));
    EXPECT_EQ(r.notice, "");
    EXPECT_EQ(b->n_past(), int64_t(kConv.size()));
    EXPECT_TRUE(bit_equal(continue_with(*b, kNext), want));

    // The model holds as much already: left alone. Another conversation: nothing to restore.
    r = store2->snapshot_store()->restore(*b, opts(), conv, all, int64_t(kConv.size()));
    EXPECT_FALSE(r.touched);
    EXPECT_EQ(b->n_past(), int64_t(all.size()));
    r = store2->snapshot_store()->restore(*b, opts(), new_conversation(*store2), all, 0);
    EXPECT_FALSE(r.touched);
}

TEST(UiSqliteStore, MismatchesFallBackWithANotice) {
    const std::string db = tmp_db("ui-snap-mismatch");
    auto store = make_sqlite_store(db);
    const int64_t conv = new_conversation(*store);
    auto a = load_model(kModel, opts());
    a->forward_tokens(kConv, false);
    ASSERT_TRUE(store->snapshot_store()->save(*a, opts(), conv, kConv));
    std::vector<int32_t> all = kConv;
    all.push_back(3);

    // Other settings (experts per token): not used, and the user is told.
    auto b = load_model(kModel, opts(1));
    auto r = store->snapshot_store()->restore(*b, opts(1), conv, all, 0);
    EXPECT_TRUE(r.touched);
    EXPECT_EQ(r.tokens, 0);
    EXPECT_EQ(b->n_past(), 0);
    EXPECT_NE(r.notice.find("other settings"), std::string::npos) << r.notice;
    EXPECT_NE(r.notice.find("re-processing"), std::string::npos) << r.notice;

    // A damaged snapshot: deleted, with a notice.
    {
        history::Store raw(db);
        raw.db().exec("UPDATE snapshot_chunks SET data = zeroblob(length(data))");
    }
    auto c = load_model(kModel, opts());
    r = make_sqlite_store(db)->snapshot_store()->restore(*c, opts(), conv, all, 0);
    EXPECT_EQ(r.tokens, 0);
    EXPECT_NE(r.notice.find("deleted"), std::string::npos) << r.notice;
    history::Store raw(db);
    EXPECT_TRUE(raw.snapshots(conv).empty());
}

TEST(UiSqliteStore, TheBudgetRefusesAStateLargerThanItself) {
    const std::string db = tmp_db("ui-snap-budget");
    {
        history::Store raw(db);
        raw.set_snapshot_budget(1024);
    }
    auto store = make_sqlite_store(db);
    const int64_t conv = new_conversation(*store);
    auto a = load_model(kModel, opts());
    a->forward_tokens(kConv, false);
    EXPECT_FALSE(store->snapshot_store()->save(*a, opts(), conv, kConv));
    history::Store raw(db);
    EXPECT_TRUE(raw.snapshots(conv).empty());
}

// ---- a chat session over the database

ChatEvent next(ChatSession& s) {
    ChatEvent ev;
    if (!s.wait_event(ev, 20s)) ADD_FAILURE() << "no event within 20 s";
    return ev;
}

ChatEvent until_terminal(ChatSession& s) {
    for (;;) {
        ChatEvent ev = next(s);
        if (ev.kind != ChatEvent::Token && ev.kind != ChatEvent::Info && ev.kind != ChatEvent::Ready) return ev;
        if (ev.kind == ChatEvent::Info && ev.text.empty()) return ev;  // timed out
    }
}

TEST(UiSqliteStore, AChatResumesFromTheDatabaseWithoutReprocessing) {
    const std::string db = tmp_db("ui-session");
    ChatSessionOptions o;
    o.model_path = kModel;
    o.model.n_threads = 1;
    o.sampler.temperature = 0;
    o.max_reply_tokens = 10;

    int64_t conv = 0;
    std::vector<ChatTurn> turns;
    ChatEvent second;
    {
        auto store = make_sqlite_store(db);
        conv = new_conversation(*store);
        o.snapshots = store->snapshot_store();
        ChatSession a(o);
        ASSERT_EQ(next(a).kind, ChatEvent::Ready);
        a.send("remember the lighthouse");
        ASSERT_EQ(until_terminal(a).kind, ChatEvent::Done);
        turns = a.turns();
        a.save_snapshot(conv);
        ChatEvent saved = until_terminal(a);
        ASSERT_EQ(saved.kind, ChatEvent::Saved) << saved.text;
        EXPECT_NE(saved.text.find("snapshot saved"), std::string::npos) << saved.text;
        a.send("and the boat?");
        second = until_terminal(a);
        ASSERT_EQ(second.kind, ChatEvent::Done);
    }

    // "A new process": a new store on the file and a new session.
    auto store = make_sqlite_store(db);
    o.snapshots = store->snapshot_store();
    ChatSession b(o);
    ASSERT_EQ(next(b).kind, ChatEvent::Ready);
    b.load(turns, true, conv);
    ChatEvent ev = until_terminal(b);
    ASSERT_EQ(ev.kind, ChatEvent::Prefilled) << ev.text;
    EXPECT_GT(ev.stats.prompt_restored, 0);
    b.send("and the boat?");
    ChatEvent again = until_terminal(b);
    ASSERT_EQ(again.kind, ChatEvent::Done);
    EXPECT_EQ(again.reply.content, second.reply.content);
    EXPECT_EQ(again.stats.prompt_tokens, second.stats.prompt_tokens);
    // No more processing than in the first process. (There the reply was processed again: this
    // random model emits byte tokens that decode to U+FFFD, so its text does not tokenize back to
    // the tokens generated. Here the load processed it, and the snapshot gave the rest.)
    EXPECT_GE(again.stats.prompt_cached, second.stats.prompt_cached);
}

}  // namespace
}  // namespace sluice::ui
