// The engine thread (engine/session.h) on the qwen3moe fixture: replies stream as events, stop keeps
// the partial reply, regenerate and edit replace it, errors become events, and reusing the KV cache
// across turns gives the same tokens as processing the whole conversation again.
#include <gtest/gtest.h>

#include "engine/session.h"

#include <map>

namespace sluice {
namespace {

using namespace std::chrono_literals;

const std::string kModel = std::string(SLUICE_FIXTURES) + "/qwen3/moe_a.gguf";

ChatSessionOptions greedy(int64_t max_tokens = 24) {
    ChatSessionOptions o;
    o.model_path = kModel;
    o.model.n_threads = 1;
    o.sampler.temperature = 0;
    o.max_reply_tokens = max_tokens;
    return o;
}

ChatEvent next(ChatSession& s) {
    ChatEvent ev;
    if (!s.wait_event(ev, 20s)) ADD_FAILURE() << "no event within 20 s";
    return ev;
}

void expect_ready(ChatSession& s) {
    ChatEvent ev = next(s);
    ASSERT_EQ(ev.kind, ChatEvent::Ready) << ev.text;
    EXPECT_NE(ev.text.find("moe_a.gguf"), std::string::npos);
}

struct Reply {
    std::string streamed;
    int n_token_events = 0;
    ChatEvent done;  // Done or Error
};

Reply collect(ChatSession& s) {
    Reply r;
    for (;;) {
        ChatEvent ev = next(s);
        if (ev.kind == ChatEvent::Token) {
            r.streamed += ev.text;
            ++r.n_token_events;
        } else if (ev.kind == ChatEvent::Done || ev.kind == ChatEvent::Error) {
            r.done = std::move(ev);
            return r;
        } else if (ev.kind == ChatEvent::Info && ev.text.empty()) {
            return r;
        }
    }
}

TEST(Session, SendStreamsTokensThenDone) {
    ChatSession s(greedy());
    expect_ready(s);
    s.send("hello there");
    Reply r = collect(s);
    ASSERT_EQ(r.done.kind, ChatEvent::Done) << r.done.text;
    EXPECT_GT(r.done.stats.n_tokens, 0);
    EXPECT_GT(r.n_token_events, 0);
    EXPECT_EQ(r.streamed, r.done.reply.content + r.done.reply.thinking);
    EXPECT_GT(r.done.stats.prompt_tokens, 5);
    EXPECT_EQ(r.done.stats.prompt_cached, 0);
    const auto turns = s.turns();
    ASSERT_EQ(turns.size(), 2u);
    EXPECT_EQ(turns[0].role, "user");
    EXPECT_EQ(turns[0].content, "hello there");
    EXPECT_EQ(turns[1].role, "assistant");

    const StatsSnapshot st = s.stats().read();
    EXPECT_GT(s.stats().version(), 0u);
    EXPECT_EQ(st.n_ctx, 512);
    // Every generated token is in the cache, except one sampled at the end of the turn.
    EXPECT_EQ(st.n_ctx_used, r.done.stats.prompt_tokens + r.done.stats.n_tokens);
    EXPECT_EQ(st.phase, StatsSnapshot::Phase::Idle);
    EXPECT_EQ(st.tokens_generated, r.done.stats.n_tokens);
    EXPECT_GT(st.tok_s, 0);
    EXPECT_GT(st.rss_bytes, 0u);
}

TEST(Session, StopMidReplyKeepsThePartialReply) {
    ChatSessionOptions o = greedy(0);
    o.token_delay_ms = 20;
    o.sampler.temperature = 1.0f;
    o.sampler.top_k = 0;
    o.sampler.top_p = 1;
    o.sampler.min_p = 0;
    ChatSession s(o);
    expect_ready(s);
    s.send("tell me a long story");
    std::string streamed;
    int n = 0;
    while (n < 3) {
        ChatEvent ev = next(s);
        ASSERT_TRUE(ev.kind == ChatEvent::Token) << "reply ended early: " << ev.text;
        streamed += ev.text;
        ++n;
    }
    EXPECT_TRUE(s.busy());
    s.stop();
    Reply r = collect(s);
    ASSERT_EQ(r.done.kind, ChatEvent::Done);
    EXPECT_EQ(r.done.stats.finish, ReplyStats::Finish::Stopped);
    EXPECT_GE(r.done.stats.n_tokens, 3);
    EXPECT_LT(r.done.stats.n_tokens, 400);
    EXPECT_EQ(streamed + r.streamed, r.done.reply.content);
    const auto turns = s.turns();
    ASSERT_EQ(turns.size(), 2u);
    EXPECT_EQ(turns[1].content, r.done.reply.content);
    // The stop does not leak into the next request.
    s.send("again");
    std::this_thread::sleep_for(50ms);
    s.stop();
    Reply r2 = collect(s);
    EXPECT_EQ(r2.done.kind, ChatEvent::Done);
    EXPECT_EQ(r2.done.stats.finish, ReplyStats::Finish::Stopped);
}

TEST(Session, StopDropsQueuedRepliesWithAnEventEach) {
    ChatSessionOptions o = greedy(0);
    o.token_delay_ms = 20;
    ChatSession s(o);
    expect_ready(s);
    const uint64_t a = s.send("first");
    const uint64_t b = s.send("second");
    EXPECT_NE(a, b);
    ChatEvent ev = next(s);
    ASSERT_EQ(ev.kind, ChatEvent::Token);
    EXPECT_EQ(ev.request, a);
    s.stop();
    // The two answers may come in either order: the drop is reported by stop() itself.
    Reply r1 = collect(s), r2 = collect(s);
    if (r1.done.request != a) std::swap(r1, r2);
    EXPECT_EQ(r1.done.request, a);
    EXPECT_FALSE(r1.done.dropped);
    EXPECT_EQ(r1.done.stats.finish, ReplyStats::Finish::Stopped);
    ASSERT_EQ(r2.done.kind, ChatEvent::Done);
    EXPECT_EQ(r2.done.request, b);
    EXPECT_TRUE(r2.done.dropped);
    EXPECT_EQ(s.turns().size(), 2u);  // the dropped message never reached the conversation
    const uint64_t c = s.set_system("be brief");
    ev = next(s);
    EXPECT_EQ(ev.kind, ChatEvent::Applied);
    EXPECT_EQ(ev.request, c);
}

TEST(Session, RegenerateAndEditReplaceTheLastReply) {
    ChatSession s(greedy());
    expect_ready(s);
    s.send("first question");
    Reply a = collect(s);
    ASSERT_EQ(a.done.kind, ChatEvent::Done);
    s.regenerate();
    Reply b = collect(s);
    ASSERT_EQ(b.done.kind, ChatEvent::Done);
    EXPECT_EQ(a.done.reply.content, b.done.reply.content);  // greedy
    EXPECT_GT(b.done.stats.prompt_cached, 0);               // the question was still cached
    ASSERT_EQ(s.turns().size(), 2u);

    s.edit_last("a different question");
    Reply c = collect(s);
    ASSERT_EQ(c.done.kind, ChatEvent::Done);
    const auto turns = s.turns();
    ASSERT_EQ(turns.size(), 2u);
    EXPECT_EQ(turns[0].content, "a different question");
}

TEST(Session, ErrorsBecomeEventsAndTheSessionGoesOn) {
    ChatSessionOptions o = greedy();
    o.model.n_ctx = 48;
    ChatSession s(o);
    expect_ready(s);
    s.send(std::string(200, 'x') + " far too long for 48 tokens of context");
    Reply r = collect(s);
    ASSERT_EQ(r.done.kind, ChatEvent::Error);
    EXPECT_NE(r.done.text.find("context"), std::string::npos) << r.done.text;
    EXPECT_TRUE(s.turns().empty());  // the failed message was not kept

    s.regenerate();
    Reply r2 = collect(s);
    ASSERT_EQ(r2.done.kind, ChatEvent::Error);
    EXPECT_NE(r2.done.text.find("regenerate"), std::string::npos);

    s.set_experts(99);
    Reply r3 = collect(s);
    ASSERT_EQ(r3.done.kind, ChatEvent::Error);

    s.send("hi");
    Reply ok = collect(s);
    EXPECT_EQ(ok.done.kind, ChatEvent::Done) << ok.done.text;

    ChatSessionOptions bad = greedy();
    bad.model_path = "/nonexistent/model.gguf";
    ChatSession s2(bad);
    ChatEvent ev = next(s2);
    EXPECT_EQ(ev.kind, ChatEvent::Error);
    EXPECT_NE(ev.text.find("/nonexistent/model.gguf"), std::string::npos);
    s2.send("hi");
    EXPECT_EQ(next(s2).kind, ChatEvent::Error);
}

TEST(Session, ReusingTheCacheGivesTheSameTokensAsReprocessing) {
    ChatSession a(greedy(16));
    expect_ready(a);
    a.set_system("You are terse.");
    a.send("one");
    ASSERT_EQ(collect(a).done.kind, ChatEvent::Done);
    const auto after_first = a.turns();
    a.send("two");
    Reply ra = collect(a);
    ASSERT_EQ(ra.done.kind, ChatEvent::Done);
    EXPECT_GT(ra.done.stats.prompt_cached, 10);
    EXPECT_LT(ra.done.stats.prompt_cached, ra.done.stats.prompt_tokens);

    ChatSession b(greedy(16));
    expect_ready(b);
    b.load(after_first, false);
    ASSERT_EQ(next(b).kind, ChatEvent::Prefilled);
    b.send("two");
    Reply rb = collect(b);
    ASSERT_EQ(rb.done.kind, ChatEvent::Done);
    EXPECT_EQ(rb.done.stats.prompt_cached, 0);
    EXPECT_EQ(ra.done.stats.prompt_tokens, rb.done.stats.prompt_tokens);
    EXPECT_EQ(ra.done.reply.content, rb.done.reply.content);
    EXPECT_EQ(ra.done.stats.n_tokens, rb.done.stats.n_tokens);
}

// A SnapshotStore in memory: one state per conversation, restored when its tokens prefix the ids.
struct MemorySnapshots : SnapshotStore {
    std::map<int64_t, std::pair<std::vector<int32_t>, std::vector<uint8_t>>> saved;
    int saves = 0;
    Restored restore(Model& m, const ModelOptions&, int64_t conv, std::span<const int32_t> ids, int64_t have) override {
        auto it = saved.find(conv);
        if (it == saved.end()) return {};
        const auto& [tokens, state] = it->second;
        size_t p = 0;
        while (p < tokens.size() && p + 1 < ids.size() && tokens[p] == ids[p]) ++p;
        if (int64_t(p) <= have) return {};
        m.load_state(state);
        m.truncate(int64_t(p));
        return {true, int64_t(p), {}};
    }
    bool save(const Model& m, const ModelOptions&, int64_t conv, std::span<const int32_t> ids) override {
        EXPECT_EQ(int64_t(ids.size()), m.n_past());
        saved[conv] = {{ids.begin(), ids.end()}, m.save_state()};
        ++saves;
        return true;
    }
};

TEST(Session, SnapshotRestoresTheStateWithoutReprocessing) {
    ChatSessionOptions o = greedy(8);
    auto snaps = std::make_shared<MemorySnapshots>();
    o.snapshots = snaps;
    ChatSession a(o);
    expect_ready(a);
    a.send("remember this");
    Reply r = collect(a);
    ASSERT_EQ(r.done.kind, ChatEvent::Done);
    a.save_snapshot(7);
    ChatEvent saved = next(a);
    ASSERT_EQ(saved.kind, ChatEvent::Saved) << saved.text;
    EXPECT_NE(saved.text.find("snapshot saved"), std::string::npos) << saved.text;
    ASSERT_EQ(snaps->saves, 1);
    EXPECT_GE(int64_t(snaps->saved[7].first.size()), r.done.stats.prompt_tokens);
    a.send("and then");
    Reply r2 = collect(a);

    ChatSession b(o);
    expect_ready(b);
    std::vector<ChatTurn> turns = a.turns();
    turns.resize(2);
    b.load(turns, true, 7);
    ChatEvent ev = next(b);
    ASSERT_EQ(ev.kind, ChatEvent::Prefilled) << ev.text;
    EXPECT_GE(ev.stats.prompt_restored, r.done.stats.prompt_tokens);  // at least the first prompt
    EXPECT_GE(ev.stats.prompt_cached, ev.stats.prompt_restored);
    b.send("and then");
    Reply r3 = collect(b);
    EXPECT_EQ(r2.done.reply.content, r3.done.reply.content);

    // Another conversation has no snapshot: processed in full.
    ChatSession c(o);
    expect_ready(c);
    c.load(turns, true, 8);
    ev = next(c);
    ASSERT_EQ(ev.kind, ChatEvent::Prefilled);
    EXPECT_EQ(ev.stats.prompt_restored, 0);
    EXPECT_EQ(ev.stats.prompt_cached, 0);
}

TEST(Session, ExpertsPerTokenCanChange) {
    ChatSession s(greedy(8));
    expect_ready(s);
    s.send("hello");
    ASSERT_EQ(collect(s).done.kind, ChatEvent::Done);
    s.set_experts(1);
    s.send("again");
    Reply r = collect(s);
    ASSERT_EQ(r.done.kind, ChatEvent::Done) << r.done.text;
    EXPECT_GT(r.done.stats.prompt_cached, 0);  // the state survived the reload
    EXPECT_EQ(s.summary().n_expert_used, 1);
}

TEST(ThinkSplitter, SplitsAtTagsArrivingInPieces) {
    ThinkSplitter sp(false);
    std::vector<std::pair<std::string, bool>> out;
    for (const char* piece : {"<th", "ink>\nhm", "m, ok</", "think>", "\n\nThe ", "answer <b>"}) sp.push(piece, out);
    sp.flush(out);
    std::string thinking, answer;
    for (auto& [s, th] : out) (th ? thinking : answer) += s;
    EXPECT_EQ(thinking, "hmm, ok");
    EXPECT_EQ(answer, "The answer <b>");

    ThinkSplitter open(true);  // the template opened the block already
    out.clear();
    open.push("\nreason</think>\n\nx", out);
    open.flush(out);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0], std::make_pair(std::string("reason"), true));
    EXPECT_EQ(out[1], std::make_pair(std::string("x"), false));
}

}  // namespace
}  // namespace sluice
