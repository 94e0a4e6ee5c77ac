// Batched, layer-major prompt processing (issue 9) against token-by-token processing, for every
// architecture's reference fixtures: logits of every position within 1e-5 relative on the converter's
// files (and the same top-1 on quantized rewrites), whatever the chunk size and wherever the chunks
// start; with expert streaming (a cache smaller than one layer's experts: groups of fetches); progress
// reported inside a chunk; a stop between layers keeps the finished chunks and nothing else.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <string>
#include <unistd.h>

#include "engine/error.h"
#include "engine/gguf/gguf.h"
#include "engine/gguf/requantize.h"
#include "engine/stats_recorder.h"
#include "engine/stream/context.h"
#include "engine/model.h"
#include "engine/stats.h"
#include "ref_test_util.h"

namespace sluice {
namespace {

using reftest::max_rel_err;

struct Case {
    std::string name;  // fixture dir/name
    GgmlType requant;  // F32: the file as converted (F16)
};

std::vector<Case> cases() {
    std::vector<Case> v;
    for (const char* f : {"qwen3/moe_a", "qwen3/moe_b", "qwen3/moe_c", "qwen3/dense_a", "qwen35/a", "qwen35/b",
                          "qwen35/c", "qwen35/next_a", "deepseek2/ds_a", "deepseek2/ds_b", "deepseek2/ds_c"})
        v.push_back({f, GgmlType::F32});
    v.push_back({"qwen3/moe_c", GgmlType::Q4_K});
    v.push_back({"qwen3/moe_b", GgmlType::Q8_0});
    v.push_back({"qwen35/c", GgmlType::Q6_K});
    v.push_back({"deepseek2/ds_c", GgmlType::Q4_K});
    return v;
}

std::string model_path(const Case& c) {
    const std::string src = std::string(SLUICE_FIXTURES) + "/" + c.name + ".gguf";
    if (c.requant == GgmlType::F32) return src;
    std::string flat = c.name;
    std::replace(flat.begin(), flat.end(), '/', '_');
    const std::string out = reftest::tmp_dir() + "prefill_" + flat + "_" + type_name(c.requant) + "_" +
                            std::to_string(getpid()) + ".gguf";
    requantize_file(src, out, c.requant);
    return out;
}

std::vector<int32_t> tokens(const Case& c) {
    return reftest::read_ids(std::string(SLUICE_FIXTURES) + "/" + c.name + ".tokens.txt");
}

ModelOptions opts(int64_t chunk, IoMode io = IoMode::Mmap, uint64_t cache = 0) {
    ModelOptions o;
    o.n_threads = 2;
    o.prefill_chunk = chunk;
    o.io = io;
    o.expert_cache = cache;
    return o;
}

int argmax(const float* x, int64_t n) { return int(std::max_element(x, x + n) - x); }

// Every position's logits through forward_tokens(all) split at `splits` (each piece one call).
std::vector<float> run(const std::string& path, const ModelOptions& o, const std::vector<int32_t>& ids,
                       std::vector<size_t> splits = {}) {
    auto m = load_model(path, o);
    splits.push_back(ids.size());
    std::vector<float> out;
    size_t at = 0;
    for (size_t s : splits) {
        std::vector<float> l = m->forward_tokens(std::span<const int32_t>(ids).subspan(at, s - at), true);
        out.insert(out.end(), l.begin(), l.end());
        at = s;
    }
    EXPECT_EQ(m->n_past(), int64_t(ids.size()));
    return out;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, int64_t nv, bool quantized) {
    ASSERT_EQ(got.size(), want.size());
    if (!quantized) {
        EXPECT_LE(max_rel_err(got, want, nv), 1e-5);
        return;
    }
    for (size_t r = 0; r < want.size() / size_t(nv); ++r)
        EXPECT_EQ(argmax(&got[r * size_t(nv)], nv), argmax(&want[r * size_t(nv)], nv)) << "position " << r;
}

TEST(Prefill, BatchedEqualsTokenByToken) {
    for (const Case& c : cases()) {
        SCOPED_TRACE(c.name + " " + type_name(c.requant));
        const std::string path = model_path(c);
        const std::vector<int32_t> ids = tokens(c);
        ASSERT_GE(ids.size(), 40u);
        const int64_t nv = load_model(path, opts(1))->hparams().n_vocab;
        const std::vector<float> ref = run(path, opts(1), ids);
        const bool q = c.requant != GgmlType::F32;
        // One chunk for everything; chunks of 7 (starting mid-conversation); a first call that leaves
        // a cached prefix, then chunks of 16 on top of it.
        expect_close(run(path, opts(512), ids), ref, nv, q);
        expect_close(run(path, opts(7), ids), ref, nv, q);
        expect_close(run(path, opts(16), ids, {5, 30}), ref, nv, q);
        if (q) std::remove(path.c_str());
    }
}

TEST(Prefill, LastLogitsOnly) {
    const Case c{"qwen3/moe_b", GgmlType::F32};
    const std::vector<int32_t> ids = tokens(c);
    const std::string path = model_path(c);
    const std::vector<float> all = run(path, opts(1), ids);
    auto m = load_model(path, opts(64));
    const std::vector<float> last = m->forward_tokens(ids, false);
    const int64_t nv = m->hparams().n_vocab;
    ASSERT_EQ(int64_t(last.size()), nv);
    EXPECT_LE(max_rel_err(last, std::vector<float>(all.end() - nv, all.end()), nv), 1e-5);
}

// What a direct read of expert e of block il fetches: each slab's 4 KiB-aligned span.
uint64_t direct_read_bytes(const gguf::File& f, int64_t il, int64_t e) {
    uint64_t n = 0;
    for (const char* name : {"ffn_gate_exps", "ffn_up_exps", "ffn_gate_up_exps", "ffn_down_exps"}) {
        const gguf::TensorInfo* t = f.find_tensor("blk." + std::to_string(il) + "." + name + ".weight");
        if (!t) continue;
        const uint64_t slab = t->nbytes / uint64_t(t->ne[2]), off = t->offset + uint64_t(e) * slab;
        n += (off + slab + 4095) / 4096 * 4096 - off / 4096 * 4096;
    }
    return n;
}

TEST(Prefill, StreamingGroupsAndReadsOnce) {
    // Expert streaming under batched prompts: page-cache (K slots: groups of K experts), direct with
    // one layer's K experts, a few more, and every expert: the logits of token-by-token mmap. With
    // room for everything and no prefetch, a chunk reads each routed expert exactly once.
    for (const char* name : {"qwen3/moe_b", "qwen35/b", "deepseek2/ds_b"}) {
        SCOPED_TRACE(name);
        const Case c{name, GgmlType::F32};
        const std::string path = model_path(c);
        const std::vector<int32_t> ids = tokens(c);
        const std::vector<float> ref = run(path, opts(1), ids);
        auto probe = load_model(path, opts(1, IoMode::Direct));
        const Hparams h = probe->hparams();
        const int64_t nv = h.n_vocab, k = h.n_expert_used;
        const uint64_t slot = probe->memory().slot_bytes;
        int64_t n_moe = 0;
        std::vector<int64_t> blocks;  // expert source layer j = block blocks[j]
        for (int64_t il = 0; il < h.n_layer; ++il)
            if (probe->file().find_tensor("blk." + std::to_string(il) + ".ffn_down_exps.weight")) blocks.push_back(il);
        n_moe = int64_t(blocks.size());
        probe.reset();
        EXPECT_LE(max_rel_err(run(path, opts(32, IoMode::PageCache), ids), ref, nv), 1e-5) << "page-cache";
        for (int64_t n : {k, k + 3, n_moe * h.n_expert}) {
            ModelOptions o = opts(32, IoMode::Direct, uint64_t(n) * slot);
            o.prefetch = false;
            auto m = load_model(path, o);
            ASSERT_EQ(m->memory().cache_slots, n);
            m->recorder().keep_trace(true);
            const std::vector<float> got = m->forward_tokens(std::span<const int32_t>(ids).first(32), true);
            EXPECT_LE(max_rel_err(got, std::vector<float>(ref.begin(), ref.begin() + 32 * nv), nv), 1e-5) << n << " slots";
            if (n != n_moe * h.n_expert) continue;
            std::vector<int32_t> keys = m->recorder().trace();
            std::sort(keys.begin(), keys.end());
            keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
            uint64_t want = 0;
            for (int32_t key : keys) want += direct_read_bytes(m->file(), blocks[size_t(key / h.n_expert)], key % h.n_expert);
            EXPECT_EQ(m->stats()->read().bytes_read_total, want);
            EXPECT_LT(keys.size(), size_t(32 * k * n_moe));  // tokens shared experts: fewer reads than routings
        }
    }
}

TEST(Prefill, ChunkGuessesTheNextLayer) {
    // With room in the cache, a chunk prefetches the union of the next layer's guessed experts over its
    // tokens; guesses change no logits.
    for (const char* name : {"qwen3/moe_b", "qwen35/b", "deepseek2/ds_b"}) {
        SCOPED_TRACE(name);
        const Case c{name, GgmlType::F32};
        const std::string path = model_path(c);
        const std::vector<int32_t> ids = tokens(c);
        const std::vector<float> ref = run(path, opts(1), ids);
        auto probe = load_model(path, opts(1, IoMode::Direct));
        const Hparams h = probe->hparams();
        const uint64_t slot = probe->memory().slot_bytes;
        probe.reset();
        auto m = load_model(path, opts(32, IoMode::Direct, uint64_t(h.n_layer * h.n_expert) * slot));
        const std::vector<float> got = m->forward_tokens(std::span<const int32_t>(ids).first(32), true);
        EXPECT_LE(max_rel_err(got, std::vector<float>(ref.begin(), ref.begin() + 32 * h.n_vocab), h.n_vocab), 1e-5);
        EXPECT_GT(m->stats()->read().prefetch_experts_total, 0u);
    }
}

TEST(Prefill, ProgressAndStop) {
    // qwen35: a stop after some recurrent layers of a chunk have advanced their state; the chunk must
    // leave no trace (the state saved at the chunk's start is what save_state gives after the stop).
    // deepseek2/ds_a: latent cache rows, 3 layers (fractional progress inside a chunk of 16).
    for (const char* name : {"qwen3/moe_b", "qwen35/b", "deepseek2/ds_a"}) {
        SCOPED_TRACE(name);
        const Case c{name, GgmlType::F32};
        const std::string path = model_path(c);
        const std::vector<int32_t> ids = tokens(c);
        const std::vector<float> ref = run(path, opts(1), ids);
        const int64_t nv = int64_t(ref.size() / ids.size());

        auto m = load_model(path, opts(16));
        std::vector<double> seen;
        std::vector<uint8_t> at16;  // the state when chunk 1 is done
        std::atomic<bool> stop{false};
        m->set_prompt_hooks({[&](double done, int64_t total) {
                                 EXPECT_EQ(total, int64_t(ids.size()));
                                 seen.push_back(done);
                                 if (done == 16) at16 = m->save_state();
                                 if (done > 20) stop = true;  // inside the second chunk
                             },
                             &stop});
        EXPECT_THROW(m->forward_tokens(ids, true), Interrupted);
        // Progress moved inside chunks (fractions of 16), never backwards; the stop kept chunk 1 only.
        ASSERT_GE(seen.size(), 3u);
        EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
        EXPECT_TRUE(std::any_of(seen.begin(), seen.end(), [](double d) { return std::fmod(d, 16.0) != 0; }));
        EXPECT_EQ(m->n_past(), 16);
        ASSERT_FALSE(at16.empty());
        EXPECT_TRUE(m->save_state() == at16);
        // Going on from there gives what an uninterrupted run gives.
        stop = false;
        m->set_prompt_hooks({});
        const std::vector<float> rest = m->forward_tokens(std::span<const int32_t>(ids).subspan(16), true);
        EXPECT_LE(max_rel_err(rest, std::vector<float>(ref.begin() + 16 * nv, ref.end()), nv), 1e-5);
    }
}

TEST(Prefill, ChunkStatsAndBadSize) {
    const Case c{"qwen3/moe_a", GgmlType::F32};
    const std::string path = model_path(c);
    EXPECT_THROW(load_model(path, opts(0)), Error);
    auto m = load_model(path, opts(8));
    const std::vector<int32_t> ids = tokens(c);
    m->forward_tokens(std::span<const int32_t>(ids).first(20), false);
    const StatsSnapshot s = m->stats()->read();
    EXPECT_EQ(s.phase, StatsSnapshot::Phase::Idle);
    EXPECT_GT(s.prompt_tok_s, 0);
    EXPECT_EQ(s.n_ctx_used, 20);
}

}  // namespace
}  // namespace sluice
