// Expert streaming for the other MoE architectures (qwen35moe / qwen3next, deepseek2), against their
// mmap forward: bit-identical logits with --io page-cache and --io direct (cache budgets of one layer's
// K experts, fewer than one layer's experts, all), and statistics that add up. deepseek2 fixtures have
// leading dense layers: sources and statistics count MoE layers only.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>

#include "engine/gguf/gguf.h"
#include "engine/model.h"
#include "engine/stats_recorder.h"
#include "engine/stream/context.h"
#include "engine/stream/expert_cache.h"

namespace sluice {
namespace {

struct Fixture {
    std::string name, path, tokens;
};

std::vector<Fixture> fixtures() {
    const std::string fx = SLUICE_FIXTURES;
    std::vector<Fixture> v;
    for (const char* f : {"a", "b", "c", "next_a"})
        v.push_back({std::string("qwen35/") + f, fx + "/qwen35/" + f + ".gguf", fx + "/qwen35/" + f + ".tokens.txt"});
    for (const char* f : {"ds_a", "ds_b", "ds_c"})
        v.push_back({std::string("deepseek2/") + f, fx + "/deepseek2/" + f + ".gguf", fx + "/deepseek2/" + f + ".tokens.txt"});
    return v;
}

std::vector<int32_t> ids(const Fixture& f, size_t n) {
    std::ifstream in(f.tokens);
    std::vector<int32_t> v;
    for (int32_t x; v.size() < n && in >> x;) v.push_back(x);
    return v;
}

ModelOptions opts(IoMode io, uint64_t cache = 0) {
    ModelOptions o;
    o.n_threads = 2;
    o.io = io;
    o.expert_cache = cache;
    return o;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The blocks that hold routed experts, in order: the expert sources' layer j is block moe_blocks[j].
std::vector<int64_t> moe_blocks(const gguf::File& f, int64_t n_layer) {
    std::vector<int64_t> v;
    for (int64_t il = 0; il < n_layer; ++il)
        if (f.find_tensor("blk." + std::to_string(il) + ".ffn_down_exps.weight")) v.push_back(il);
    return v;
}

// What a direct read of expert e of block il fetches: each slab's 4 KiB-aligned span; n_pieces: reads.
uint64_t direct_read_bytes(const gguf::File& f, int64_t il, int64_t e, int* n_pieces) {
    uint64_t n = 0;
    *n_pieces = 0;
    for (const char* name : {"ffn_gate_exps", "ffn_up_exps", "ffn_gate_up_exps", "ffn_down_exps"}) {
        const gguf::TensorInfo* t = f.find_tensor("blk." + std::to_string(il) + "." + name + ".weight");
        if (!t) continue;
        const uint64_t slab = t->nbytes / uint64_t(t->ne[2]), off = t->offset + uint64_t(e) * slab;
        n += (off + slab + 4095) / 4096 * 4096 - off / 4096 * 4096;
        ++*n_pieces;
    }
    return n;
}

TEST(StreamingArchs, BitIdenticalToMmap) {
    for (const Fixture& fx : fixtures()) {
        SCOPED_TRACE(fx.name);
        const std::vector<int32_t> t = ids(fx, 12);
        ASSERT_FALSE(t.empty());
        const std::vector<float> ref = load_model(fx.path, opts(IoMode::Mmap))->forward_tokens(t, true);
        auto probe = load_model(fx.path, opts(IoMode::Direct));
        ASSERT_EQ(probe->memory().mode, IoMode::Direct);
        const Hparams h = probe->hparams();
        const uint64_t slot = probe->memory().slot_bytes;
        const int64_t n_moe = int64_t(moe_blocks(probe->file(), h.n_layer).size());
        probe.reset();
        const int64_t k = h.n_expert_used;
        ASSERT_GT(h.n_expert, k + 1);
        auto pc = load_model(fx.path, opts(IoMode::PageCache));
        EXPECT_EQ(pc->memory().mode, IoMode::PageCache);
        EXPECT_TRUE(same_bits(pc->forward_tokens(t, true), ref)) << "page-cache";
        // one layer's K experts, fewer than one layer's experts, all of them
        for (int64_t n : {k, std::min(k + 3, h.n_expert - 1), n_moe * h.n_expert}) {
            auto m = load_model(fx.path, opts(IoMode::Direct, uint64_t(n) * slot));
            EXPECT_EQ(m->memory().cache_slots, n);
            EXPECT_TRUE(same_bits(m->forward_tokens(t, true), ref)) << "direct, " << n << " slots";
        }
    }
}

TEST(StreamingArchs, StatisticsAddUp) {
    for (const Fixture& fx : fixtures()) {
        SCOPED_TRACE(fx.name);
        const std::vector<int32_t> t = ids(fx, 10);
        const uint64_t slot = load_model(fx.path, opts(IoMode::Direct))->memory().slot_bytes;
        const int64_t n_slots = 12;
        ModelOptions o = opts(IoMode::Direct, uint64_t(n_slots) * slot);
        o.cache_policy = CachePolicy::Lru;
        o.prefetch = false;  // guesses change what is cached
        o.prefill_chunk = 1;  // token by token: the trace replays one token after another
        auto m = load_model(fx.path, o);
        m->recorder().keep_trace(true);
        m->forward_tokens(t, false);
        const StatsSnapshot s = m->stats()->read();
        const Hparams& h = m->hparams();
        const std::vector<int64_t> blocks = moe_blocks(m->file(), h.n_layer);
        const int64_t k = h.n_expert_used;
        const uint64_t lookups = uint64_t(t.size()) * blocks.size() * uint64_t(k);
        EXPECT_EQ(s.expert_hits + s.expert_misses, lookups);
        ASSERT_EQ(m->recorder().trace().size(), lookups);
        // Replaying the routing through the same policy gives the same misses; their slabs are the bytes.
        ExpertCache c(n_slots, int64_t(blocks.size()) * h.n_expert, CachePolicy::Lru);
        uint64_t bytes = 0, misses = 0, reads = 0;
        const auto& tr = m->recorder().trace();
        for (size_t i = 0; i < tr.size(); i += size_t(k)) {
            c.unpin_all();
            for (size_t j = i; j < i + size_t(k); ++j)
                if (!c.acquire(tr[j]).hit) {
                    int pieces = 0;
                    ++misses;
                    bytes += direct_read_bytes(m->file(), blocks[size_t(tr[j] / h.n_expert)], tr[j] % h.n_expert, &pieces);
                    reads += uint64_t(pieces);
                }
        }
        EXPECT_GT(misses, 0u);
        EXPECT_EQ(s.expert_misses, misses);
        EXPECT_EQ(s.bytes_read_total, bytes);
        EXPECT_EQ(s.reads_total, reads);
        EXPECT_EQ(s.n_ctx_used, int64_t(t.size()));
        EXPECT_STREQ(s.io_mode, "direct");
        EXPECT_GT(s.t_attention, 0);
        EXPECT_GE(s.t_token, s.t_attention + s.t_experts_compute + s.t_experts_wait);
        EXPECT_GT(s.routing_distinct, 0);

        // Page cache: every lookup is a probe hit or a miss.
        ModelOptions pco = opts(IoMode::PageCache);
        pco.prefetch = false;
        pco.prefill_chunk = 1;  // a lookup per token and layer (a chunk looks each expert up once)
        auto pc = load_model(fx.path, pco);
        pc->forward_tokens(t, false);
        const StatsSnapshot p = pc->stats()->read();
        EXPECT_EQ(p.expert_hits + p.expert_misses, lookups);
        EXPECT_STREQ(p.io_mode, "page-cache");
    }
}

TEST(StreamingArchs, PrefetchGuessesTheNextLayer) {
    // Both architectures guess the next MoE layer's experts (its router on this layer's input) as
    // qwen3moe does; guessed reads are counted apart and in the totals, and change no logits.
    for (const Fixture& fx : fixtures()) {
        SCOPED_TRACE(fx.name);
        const std::vector<int32_t> t = ids(fx, 10);
        auto probe = load_model(fx.path, opts(IoMode::Direct));
        const uint64_t slot = probe->memory().slot_bytes;
        const Hparams h = probe->hparams();
        const size_t n_moe = moe_blocks(probe->file(), h.n_layer).size();
        probe.reset();
        ModelOptions o = opts(IoMode::Direct, uint64_t(4 * h.n_expert_used) * slot);
        o.prefill_chunk = 1;  // decode-time guesses (a chunk guesses for all its tokens: test_prefill)
        auto m = load_model(fx.path, o);
        m->forward_tokens(t, false);
        const StatsSnapshot s = m->stats()->read();
        if (n_moe > 1) {
            EXPECT_GT(s.prefetch_experts_total, 0u);
            EXPECT_GT(s.prefetch_bytes_total, 0u);
        } else {
            EXPECT_EQ(s.prefetch_experts_total, 0u);  // no next MoE layer to guess
        }
        EXPECT_LE(s.prefetch_bytes_total, s.bytes_read_total);
        EXPECT_GE(s.guess_accuracy, 0.0);
        EXPECT_LE(s.guess_accuracy, 1.0);
    }
}

}  // namespace
}  // namespace sluice
