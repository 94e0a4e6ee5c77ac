// Resume benchmark: time to first token for a new message at the end of a long conversation, (a)
// re-processing the whole conversation, (b) restoring its prefill snapshot from the history database
// and processing only the new message. Prints one JSON object.
//
// The conversation is T pseudo-random token ids, the new message N more. (a) runs once (it is the
// slow one); (b) R times, each with a freshly opened Store (no SQLite page cache) and a reset model;
// the median is reported. The disk's page cache is warm (the snapshot was just written). Both must pick the same first token, with bit-identical logits.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/model.h"
#include "history/resume.h"
#include "history/store.h"

using namespace sluice;
using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int main(int argc, char** argv) {
    std::string path, db;
    int threads = 2, T = 2000, N = 32, R = 3;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> const char* {
            if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
            return argv[++i];
        };
        if (a == "-m") path = next();
        else if (a == "-t") threads = std::atoi(next());
        else if (a == "--tokens") T = std::atoi(next());
        else if (a == "--new") N = std::atoi(next());
        else if (a == "-r") R = std::atoi(next());
        else if (a == "--db") db = next();
        else if (a == "--json") {}
        else {
            std::fprintf(stderr, "usage: bench_resume -m MODEL.gguf [-t 2] [--tokens 2000] [--new 32] [-r 3] [--db FILE] [--json]\n");
            return 2;
        }
    }
    if (path.empty() || T < 2 || N < 1 || R < 1) { std::fprintf(stderr, "bench_resume: -m MODEL.gguf required\n"); return 2; }
    const bool own_db = db.empty();
    if (own_db) db = (std::filesystem::temp_directory_path() / ("bench_resume-" + std::to_string(getpid()) + ".db")).string();
    try {
        ModelOptions opt;
        opt.n_threads = threads;
        opt.n_ctx = T + N + 8;
        auto m = load_model(path, opt);
        const int64_t nv = m->hparams().n_vocab;
        std::vector<int32_t> ids;
        for (int i = 0; i < T + N; ++i) ids.push_back(int32_t((uint64_t(i) * 7919 + 13) % uint64_t(nv)));
        const std::span<const int32_t> conv = std::span<const int32_t>(ids).first(size_t(T));

        // (a) Re-process everything.
        auto t0 = Clock::now();
        const std::vector<float> want = m->forward_tokens(ids, false);
        const double reprocess_s = since(t0);
        const int32_t want_tok = int32_t(std::max_element(want.begin(), want.end()) - want.begin());

        // The snapshot a finished turn would leave: the state after the conversation.
        m->truncate(T);
        const history::ModelIdentity ident = history::model_identity(*m, opt);
        int64_t conv_id = 0;
        uint64_t state_bytes = 0, stored_bytes = 0;
        double save_s = 0;
        {
            history::Store store(db);
            conv_id = store.create_conversation({.title = "bench"});
            t0 = Clock::now();
            const int64_t sid = history::save_snapshot(*m, store, conv_id, conv, ident);
            save_s = since(t0);
            if (sid == 0) throw Error("the snapshot is larger than the budget");
            const auto info = store.snapshots(conv_id).at(0);
            state_bytes = info.state_bytes;
            stored_bytes = info.stored_bytes;
        }

        // (b) Resume: open the store, restore, process the new message.
        std::vector<double> ttft, restore, fresh;
        bool same = true;
        int64_t restored = 0;
        for (int r = 0; r < R; ++r) {
            m->reset();
            history::Store store(db);  // a chat keeps its store open: opening is not part of the wait
            t0 = Clock::now();
            const history::ResumeResult res = history::resume(*m, store, conv_id, ids, ident);
            const double t_restore = since(t0);
            const std::vector<float> got = m->forward_tokens(std::span<const int32_t>(ids).subspan(size_t(res.restored)), false);
            const int32_t tok = int32_t(std::max_element(got.begin(), got.end()) - got.begin());
            ttft.push_back(since(t0));
            restore.push_back(t_restore);
            fresh.push_back(ttft.back() - t_restore);
            restored = res.restored;
            if (!res.notice.empty()) std::fprintf(stderr, "notice: %s\n", res.notice.c_str());
            same = same && tok == want_tok && got.size() == want.size() && !std::memcmp(got.data(), want.data(), want.size() * 4);
        }
        const double resume_s = median(ttft);
        std::printf("{\"bench\":\"resume\",\"model\":\"%s\",\"model_bytes\":%llu,\"arch\":\"%s\",\"n_layer\":%lld,\"threads\":%d,"
                    "\"conversation_tokens\":%d,\"new_tokens\":%d,"
                    "\"reprocess_ttft_s\":%.4f,\"resume_ttft_s_median\":%.4f,\"resume_ttft_s_runs\":[",
                    path.c_str(), (unsigned long long)m->file().file_size(), m->hparams().arch.c_str(), (long long)m->hparams().n_layer,
                    m->pool().size(), T, N, reprocess_s, resume_s);
        for (size_t i = 0; i < ttft.size(); ++i) std::printf("%s%.4f", i ? "," : "", ttft[i]);
        std::printf("],\"resume_restore_s_median\":%.4f,\"resume_new_tokens_s_median\":%.4f,\"speedup\":%.1f,"
                    "\"restored_tokens\":%lld,\"snapshot_state_bytes\":%llu,\"snapshot_stored_bytes\":%llu,\"save_s\":%.4f,"
                    "\"same_first_token_and_logits\":%s,\"isa\":\"%s\"}\n",
                    median(restore), median(fresh), reprocess_s / resume_s, (long long)restored, (unsigned long long)state_bytes,
                    (unsigned long long)stored_bytes, save_s, same ? "true" : "false", isa_name(active_isa()));
        if (own_db)
            for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(db + s);
        return same && restored == T ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_resume: %s\n", e.what());
        return 1;
    }
}
