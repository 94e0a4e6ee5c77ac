// The chat's /open, timed: from opening a saved conversation of ~T tokens to the first token of the
// next reply, (a) restoring its prefill snapshot from the history database (ui/sqlite_store.h) and
// (b) re-processing it as `sluice chat --no-history` would. Both go through the engine thread
// (ChatSession) as the chat does; model loading is not timed (each run waits for Ready first).
//
// The conversation is English text in user/assistant turns, processed and saved once; then R runs
// of (a) and one of (b), each with a fresh session. Prints one JSON object.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/gguf/gguf.h"
#include "engine/session.h"
#include "engine/text/tokenizer.h"
#include "engine/text/vocab.h"
#include "ui/sqlite_store.h"

using namespace sluice;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

static double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

static ChatEvent until(ChatSession& s, std::initializer_list<ChatEvent::Kind> kinds) {
    ChatEvent ev;
    for (;;) {
        if (!s.wait_event(ev, 600s)) throw Error("no event within 600 s");
        if (ev.kind == ChatEvent::Error) throw Error("engine: " + ev.text);
        for (auto k : kinds)
            if (ev.kind == k) return ev;
    }
}

static const char* kSentences[] = {
    "The lighthouse keeper climbed the spiral stairs every evening to light the lamp. ",
    "Ships passing the rocky point relied on its beam to find the harbour entrance. ",
    "In winter the storms were fierce, and salt spray coated the windows of the tower. ",
    "She kept a logbook of every vessel, its flag, its cargo and the weather at sea. ",
    "Her brother fixed the clockwork that turned the great lens through the night. ",
    "When the fog rolled in, the horn sounded twice a minute until the dawn came. ",
};

struct Run {
    double to_first_token_s = 0, open_s = 0;
    int64_t prompt_tokens = 0, restored = 0, processed = 0, reply_processed = 0;
    int32_t first_token_text_len = 0;
};

// /open N, then a message: from the start of /open to the first token of the reply.
static Run open_and_ask(ChatSessionOptions o, ui::ConversationStore* store, int64_t conv, const std::vector<ChatTurn>& turns) {
    ChatSession s(o);
    until(s, {ChatEvent::Ready});
    Run r;
    const auto t0 = Clock::now();
    std::vector<ChatTurn> t = turns;
    if (store) {  // what the chat does: read the messages back from the database
        t.clear();
        for (const ui::StoredMessage& m : store->messages(conv)) t.push_back({m.role, m.content, m.thinking});
    }
    s.load(t, true, store ? conv : 0);
    const ChatEvent pre = until(s, {ChatEvent::Prefilled});
    r.open_s = since(t0);
    r.prompt_tokens = pre.stats.prompt_tokens;
    r.restored = pre.stats.prompt_restored;
    r.processed = pre.stats.prompt_tokens - pre.stats.prompt_cached;
    s.send("What did the keeper write in her logbook?");
    const ChatEvent first = until(s, {ChatEvent::Token, ChatEvent::Done});  // Done: the first token ended the turn
    r.to_first_token_s = since(t0);
    const ChatEvent done = first.kind == ChatEvent::Done ? first : until(s, {ChatEvent::Done});
    r.reply_processed = done.stats.prompt_tokens - done.stats.prompt_cached;
    return r;
}

int main(int argc, char** argv) {
    std::string path, db;
    int threads = 2, T = 1500, R = 3;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> const char* {
            if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
            return argv[++i];
        };
        if (a == "-m") path = next();
        else if (a == "-t") threads = std::atoi(next());
        else if (a == "--tokens") T = std::atoi(next());
        else if (a == "-r") R = std::atoi(next());
        else if (a == "--db") db = next();
        else {
            std::fprintf(stderr, "usage: bench_chat_resume -m MODEL.gguf [-t 2] [--tokens 1500] [-r 3] [--db FILE]\n");
            return 2;
        }
    }
    if (path.empty() || T < 10 || R < 1) { std::fprintf(stderr, "bench_chat_resume: -m MODEL.gguf required\n"); return 2; }
    const bool own_db = db.empty();
    if (own_db) db = (std::filesystem::temp_directory_path() / ("bench_chat_resume-" + std::to_string(getpid()) + ".db")).string();
    try {
        // Turns of about 100 tokens until the conversation holds ~T (counted without the template).
        const text::Tokenizer tok(text::from_gguf(*gguf::File::open(path)));
        std::vector<ChatTurn> turns;
        int64_t n = 0;
        for (size_t k = 0; n < T; ++k) {
            std::string text;
            for (size_t j = k; int64_t(tok.encode(text, false).size()) < 100; ++j) text += kSentences[j % std::size(kSentences)];
            n += int64_t(tok.encode(text, false).size()) + 5;
            turns.push_back({k % 2 ? "assistant" : "user", text, {}});
        }
        if (turns.back().role == "user") turns.pop_back();

        ChatSessionOptions o;
        o.model_path = path;
        o.model.n_threads = threads;
        o.model.n_ctx = std::max<int64_t>(T * 2, 1024);
        o.sampler.temperature = 0;
        o.max_reply_tokens = 1;

        // The conversation as it is saved: processed once, its messages and snapshot stored.
        auto store = ui::make_sqlite_store(db);
        ui::ConversationInfo ci;
        ci.title = "lighthouse";
        const int64_t conv = store->create(ci);
        for (const ChatTurn& t : turns) store->append(conv, {t.role, t.content, {}, 0, {}, false, 0});
        o.snapshots = store->snapshot_store();
        double first_s = 0, save_s = 0;
        int64_t total = 0;
        {
            ChatSession s(o);
            until(s, {ChatEvent::Ready});
            auto t0 = Clock::now();
            s.load(turns, true, conv);
            total = until(s, {ChatEvent::Prefilled}).stats.prompt_tokens;
            first_s = since(t0);
            t0 = Clock::now();
            s.save_snapshot(conv);
            until(s, {ChatEvent::Saved});
            save_s = since(t0);
        }

        std::vector<Run> snap;
        for (int i = 0; i < R; ++i) snap.push_back(open_and_ask(o, store.get(), conv, turns));
        ChatSessionOptions plain = o;
        plain.snapshots = nullptr;
        const Run re = open_and_ask(plain, nullptr, 0, turns);

        std::vector<double> ttft;
        for (const Run& r : snap) ttft.push_back(r.to_first_token_s);
        std::sort(ttft.begin(), ttft.end());
        const double med = ttft[ttft.size() / 2];
        std::printf("{\"model\":\"%s\",\"threads\":%d,\"conversation_tokens\":%lld,\"turns\":%zu,"
                    "\"first_processing_s\":%.3f,\"snapshot_save_s\":%.3f,"
                    "\"snapshot\":{\"open_to_first_token_s_median\":%.4f,\"open_s\":%.4f,\"restored\":%lld,\"processed\":%lld,"
                    "\"reply_prompt_processed\":%lld,\"runs\":%d},"
                    "\"reprocess\":{\"open_to_first_token_s\":%.4f,\"open_s\":%.4f,\"processed\":%lld,\"reply_prompt_processed\":%lld},"
                    "\"speedup\":%.1f}\n",
                    std::filesystem::path(path).filename().c_str(), threads, (long long)total, turns.size(), first_s, save_s, med,
                    snap[0].open_s, (long long)snap[0].restored, (long long)snap[0].processed, (long long)snap[0].reply_processed, R,
                    re.to_first_token_s, re.open_s, (long long)re.processed, (long long)re.reply_processed, re.to_first_token_s / med);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_chat_resume: %s\n", e.what());
        if (own_db) std::filesystem::remove(db);
        return 1;
    }
    if (own_db)
        for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(db + s);
    return 0;
}
