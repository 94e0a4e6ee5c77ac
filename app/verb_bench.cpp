// sluice bench MODEL.gguf [-p P] [-n N] [-r R] [--json] + the model flags (--io, --memory, ...):
// decode speed and what expert streaming did for it. A prompt of P pseudo-random tokens (the same ids
// bench/peer/llama_peer uses for a seed), then R repetitions of N greedy tokens from the state after
// the prompt. Every number per token comes from the model's StatsBoard, as the UI sees it; medians over
// the decode tokens of all repetitions. The routing trace of the decode is replayed through the expert
// cache at several sizes with both policies (what a cache of that size would have hit).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "app/args.h"
#include "app/model_flags.h"
#include "app/verbs.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/model_info.h"
#include "engine/sampler.h"
#include "engine/stats_recorder.h"
#include "engine/stream/context.h"
#include "engine/stream/expert_cache.h"
#include "engine/stream/memory.h"

namespace sluice {

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

uint64_t peak_rss() {
    FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    uint64_t kb = 0;
    while (std::fgets(line, sizeof line, f))
        if (!std::strncmp(line, "VmHWM:", 6)) kb = std::strtoull(line + 6, nullptr, 10);
    std::fclose(f);
    return kb * 1024;
}

// Hit rate a cache of n_slots would have had on the trace (keys in access order, k per layer step).
double replay(const std::vector<int32_t>& trace, int64_t k, int64_t n_keys, int64_t n_slots, CachePolicy p) {
    if (trace.empty() || n_slots < k) return 0;
    ExpertCache c(n_slots, n_keys, p);
    for (size_t i = 0; i < trace.size(); i += size_t(k)) {
        c.unpin_all();
        for (size_t j = i; j < i + size_t(k) && j < trace.size(); ++j) c.acquire(trace[j]);
    }
    return double(c.hits()) / double(c.hits() + c.misses());
}

std::string fmt(const char* f, double x) {
    char b[64];
    std::snprintf(b, sizeof b, f, x);
    return b;
}

}  // namespace

int verb_bench(int argc, char** argv) {
    std::set<std::string> flags = {"-p", "-n", "-r", "--seed"};
    flags.insert(kModelFlags.begin(), kModelFlags.end());
    std::set<std::string> bools = {"--json"};
    bools.insert(kModelBoolFlags.begin(), kModelBoolFlags.end());
    Args a(argc, argv, flags, bools);
    if (a.positional().size() != 1)
        throw Error(std::string("usage: sluice bench MODEL.gguf [-p P] [-n N] [-r R] [--json] ") + kModelFlagsHelp);
    const std::string path = a.positional()[0];
    const int64_t P = a.i64("-p", 16), N = a.i64("-n", 32), R = a.i64("-r", 3);
    if (P < 1 || N < 1 || R < 1) throw Error("-p, -n and -r must be at least 1");
    const bool json = a.has("--json");
    ModelOptions opt = model_options(a);
    if (!a.has("-t")) opt.n_threads = 2;
    if (!a.has("-c")) opt.n_ctx = P + N + 1;

    const auto t_load = Clock::now();
    auto m = load_model(path, opt);
    const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();
    const MemoryReport mem = m->memory();
    std::fprintf(stderr, "%s\nloaded in %.2f s\n", describe(mem).c_str(), load_s);
    const Hparams& h = m->hparams();
    const int64_t nv = h.n_vocab;

    // llama_peer's prompt: xorshift32 from the seed.
    std::vector<int32_t> prompt(static_cast<size_t>(P));
    uint32_t x = uint32_t(a.i64("--seed", 42)) * 2654435761u + 1;
    for (int32_t& t : prompt) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        t = int32_t(x % uint32_t(nv));
    }
    // The prompt, in chunks of --batch: what was read from the file against what the chunks touched
    // (each routed expert once per chunk is the most a batched prefill should read).
    StatsRecorder& rec = m->recorder();
    rec.keep_trace(true);
    const uint64_t pbytes0 = m->stats()->read().bytes_read_total, pos0 = os_read_bytes();
    const auto t0 = Clock::now();
    std::vector<float> last = m->forward_tokens(prompt, false);
    const double prompt_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const uint64_t prompt_bytes = m->stats()->read().bytes_read_total - pbytes0, prompt_os = os_read_bytes() - pos0;
    const int32_t first = argmax(last);
    const StatsSnapshot ps = m->stats()->read();  // the last chunk's time split
    const ModelInfo info = model_info(m->file(), opt.experts_per_token);
    const int64_t chunk = m->prefill_chunk(), n_chunks = (P + chunk - 1) / chunk;
    uint64_t touched = 0;  // distinct (layer, expert) per chunk x one expert's bytes
    if (info.n_moe_layers > 0) {
        const std::vector<int32_t>& tr = rec.trace();
        const int64_t per_tok = int64_t(tr.size()) / P;  // routings per token over all MoE layers
        for (int64_t c = 0; c < n_chunks && per_tok > 0; ++c) {
            const int64_t t1 = std::min(P, (c + 1) * chunk);
            std::vector<int32_t> keys(tr.begin() + c * chunk * per_tok, tr.begin() + t1 * per_tok);
            std::sort(keys.begin(), keys.end());
            touched += uint64_t(std::unique(keys.begin(), keys.end()) - keys.begin()) * info.expert_slab_bytes;
        }
    }
    rec.keep_trace(true);  // the decode's trace starts empty
    const auto board = m->stats();
    std::vector<double> runs, tok_ms, bytes, os_bytes, mb_s, att, comp, wait, other;
    std::vector<int32_t> greedy;
    uint64_t hits0 = board->read().expert_hits, miss0 = board->read().expert_misses, rss_max = 0;
    for (int64_t r = 0; r < R; ++r) {
        m->truncate(P);
        int32_t tok = first;
        greedy.assign(1, first);
        const auto t1 = Clock::now();
        for (int64_t i = 0; i < N; ++i) {
            const float* l = m->forward(tok);
            tok = argmax(std::span<const float>(l, size_t(nv)), m->logits_block_max());
            greedy.push_back(tok);
            const StatsSnapshot s = board->read();  // what the UI would show for this token
            tok_ms.push_back(s.t_token * 1e3);
            bytes.push_back(double(s.bytes_read_token));
            os_bytes.push_back(double(s.os_read_bytes_token));
            mb_s.push_back(s.disk_mb_s);
            att.push_back(s.t_attention * 1e3);
            comp.push_back(s.t_experts_compute * 1e3);
            wait.push_back(s.t_experts_wait * 1e3);
            other.push_back(s.t_other * 1e3);
            rss_max = std::max(rss_max, s.rss_bytes);
        }
        runs.push_back(double(N) / std::chrono::duration<double>(Clock::now() - t1).count());
    }
    const StatsSnapshot s = board->read();
    const uint64_t hits = s.expert_hits - hits0, misses = s.expert_misses - miss0;
    const double hit_rate = hits + misses ? double(hits) / double(hits + misses) : 0;

    // Policy replay at the configured size and at fractions of all experts.
    const int64_t k = s.experts_per_token, n_keys = h.n_layer * h.n_expert;
    std::vector<int64_t> sizes;
    if (mem.mode == IoMode::Direct) sizes.push_back(mem.cache_slots);
    for (double f : {0.05, 0.10, 0.25, 0.50})
        if (int64_t(f * double(n_keys)) >= k) sizes.push_back(int64_t(f * double(n_keys)));
    std::string replay_json = "[";
    std::string replay_text;
    for (size_t i = 0; k > 0 && i < sizes.size(); ++i) {
        const double lru = replay(rec.trace(), k, n_keys, sizes[i], CachePolicy::Lru);
        const double lfu = replay(rec.trace(), k, n_keys, sizes[i], CachePolicy::Lfu);
        replay_json += std::string(i ? "," : "") + "{\"slots\":" + std::to_string(sizes[i]) +
                       ",\"fraction\":" + fmt("%.4f", double(sizes[i]) / double(n_keys)) + ",\"lru\":" + fmt("%.4f", lru) +
                       ",\"lfu\":" + fmt("%.4f", lfu) + "}";
        replay_text += "  " + std::to_string(sizes[i]) + " slots (" + fmt("%.0f", 100.0 * double(sizes[i]) / double(n_keys)) +
                       "% of experts): lru " + fmt("%.3f", lru) + "  lfu " + fmt("%.3f", lfu) + "\n";
    }
    replay_json += "]";

    const double med = median(runs);
    if (json) {
        std::string r, g;
        for (size_t i = 0; i < runs.size(); ++i) r += (i ? "," : "") + fmt("%.4f", runs[i]);
        for (size_t i = 0; i < greedy.size(); ++i) g += (i ? "," : "") + std::to_string(greedy[i]);
        std::printf(
            "{\"engine\":\"sluice\",\"model\":\"%s\",\"model_bytes\":%llu,\"isa\":\"%s\",\"threads\":%d,"
            "\"io_mode\":\"%s\",\"io_engine\":\"%s\",\"io_note\":\"%s\",\"cache_policy\":\"%s\",\"memory_budget\":%llu,"
            "\"dense_bytes\":%llu,\"expert_cache_bytes\":%llu,\"cache_slots\":%lld,\"slot_bytes\":%llu,"
            "\"experts_per_token\":%lld,\"load_s\":%.3f,\"prompt_tokens\":%lld,\"prompt_tok_s\":%.4f,"
            "\"batch\":%lld,\"prompt_chunks\":%lld,\"prompt_bytes_read\":%llu,\"prompt_os_read_bytes\":%llu,"
            "\"prompt_touched_expert_bytes\":%llu,"
            "\"decode_tokens\":%lld,\"decode_tok_s_runs\":[%s],\"decode_tok_s_median\":%.4f,"
            "\"token_ms_median\":%.3f,\"bytes_read_per_token_median\":%.0f,\"os_read_bytes_per_token_median\":%.0f,"
            "\"disk_mb_s_median\":%.2f,\"expert_hits\":%llu,\"expert_misses\":%llu,\"hit_rate\":%.4f,"
            "\"hit_rate_source\":\"%s\",\"t_attention_ms_median\":%.3f,\"t_experts_compute_ms_median\":%.3f,"
            "\"t_experts_wait_ms_median\":%.3f,\"t_other_ms_median\":%.3f,\"rss_bytes_max\":%llu,\"rss_peak_bytes\":%llu,"
            "\"prefetch\":%s,\"prefetch_bytes_total\":%llu,\"prefetch_experts_total\":%llu,\"guess_accuracy\":%.4f,"
            "\"routing_overlap\":%.4f,\"routing_distinct_per_layer\":%.2f,\"n_expert\":%lld,\"policy_replay\":%s,"
            "\"greedy_tokens\":[%s]}\n",
            path.c_str(), (unsigned long long)mem.file_bytes, isa_name(active_isa()), m->pool().size(), s.io_mode,
            s.io_engine, mem.note.c_str(), mem.policy.c_str(), (unsigned long long)opt.memory_budget,
            (unsigned long long)mem.dense_bytes, (unsigned long long)mem.expert_cache_bytes, (long long)mem.cache_slots,
            (unsigned long long)mem.slot_bytes, (long long)k, load_s, (long long)P, double(P) / prompt_s, (long long)chunk, (long long)n_chunks,
            (unsigned long long)prompt_bytes, (unsigned long long)prompt_os, (unsigned long long)touched, (long long)N,
            r.c_str(), med, median(tok_ms), median(bytes), median(os_bytes), median(mb_s), (unsigned long long)hits,
            (unsigned long long)misses, hit_rate, s.hit_rate_source, median(att), median(comp), median(wait),
            median(other), (unsigned long long)rss_max, (unsigned long long)peak_rss(), opt.prefetch ? "true" : "false",
            (unsigned long long)s.prefetch_bytes_total, (unsigned long long)s.prefetch_experts_total, s.guess_accuracy,
            s.routing_overlap,
            s.routing_distinct, (long long)h.n_expert, replay_json.c_str(), g.c_str());
    } else {
        std::printf("decode     %lld tokens x %lld: median %.3f tok/s (runs", (long long)N, (long long)R, med);
        for (double v : runs) std::printf(" %.3f", v);
        std::printf(")\nprompt     %lld tokens: %.3f tok/s (%lld chunks of --batch %lld); read %s, kernel read %s; "
                    "the chunks touched %s of experts\n",
                    (long long)P, double(P) / prompt_s, (long long)n_chunks, (long long)chunk, format_bytes(prompt_bytes).c_str(),
                    format_bytes(prompt_os).c_str(), format_bytes(touched).c_str());
        std::printf("last chunk %.2f s: attention %.2f, experts compute %.2f, experts wait %.2f, other %.2f\n", ps.t_token,
                    ps.t_attention, ps.t_experts_compute, ps.t_experts_wait, ps.t_other);
        std::printf("per token  %.1f ms: attention %.1f, experts compute %.1f, experts wait %.1f, other %.1f (medians)\n",
                    median(tok_ms), median(att), median(comp), median(wait), median(other));
        std::printf("reads      %s per token (median), %.0f MB/s; kernel read %s per token\n",
                    format_bytes(uint64_t(median(bytes))).c_str(), median(mb_s),
                    format_bytes(uint64_t(median(os_bytes))).c_str());
        std::printf("experts    K=%lld, hits %llu misses %llu: hit rate %.3f (%s)\n", (long long)k,
                    (unsigned long long)hits, (unsigned long long)misses, hit_rate,
                    s.hit_rate_source[0] ? s.hit_rate_source : "not measured");
        std::printf("routing    consecutive tokens share %.2f of %lld experts per layer; %.1f of %lld experts used per layer\n",
                    s.routing_overlap, (long long)k, s.routing_distinct, (long long)h.n_expert);
        if (s.prefetch_experts_total || s.guess_accuracy > 0)
            std::printf("prefetch   %llu guessed experts read (%s); %.0f%% of guesses used\n",
                        (unsigned long long)s.prefetch_experts_total, format_bytes(s.prefetch_bytes_total).c_str(),
                        100.0 * s.guess_accuracy);
        std::printf("memory     RSS max %s, peak %s\n", format_bytes(rss_max).c_str(), format_bytes(peak_rss()).c_str());
        if (!replay_text.empty()) std::printf("cache replay of the decode routing:\n%s", replay_text.c_str());
    }
    return 0;
}

}  // namespace sluice
