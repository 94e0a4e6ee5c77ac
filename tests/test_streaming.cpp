// Expert streaming against the mmap forward (the reference): bit-identical logits in both I/O modes,
// both read engines and cache budgets down to one layer's K experts; the cache policies; the memory
// budget's refusals; --experts-per-token; statistics that add up; read errors and a file truncated
// while running stop the token with a clear error and leave the conversation usable.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/gguf/gguf.h"
#include "engine/gguf/requantize.h"
#include "engine/model.h"
#include "engine/moe.h"
#include "engine/stats_recorder.h"
#include "engine/stream/context.h"
#include "engine/stream/expert_cache.h"
#include "engine/tensor/kernels.h"

namespace sluice {
namespace {

const std::string kFx = std::string(SLUICE_FIXTURES) + "/qwen3/";

std::string tmp(const std::string& name) {
    const char* t = std::getenv("SLUICE_TMP");
    std::filesystem::path d = t ? t : "/tmp/sluice-test";
    std::filesystem::create_directories(d);
    return (d / ("streaming-" + std::to_string(getpid()) + "-" + name)).string();
}

std::vector<int32_t> ids(const std::string& fixture, size_t n = 20) {
    std::ifstream in(kFx + fixture + ".tokens.txt");
    std::vector<int32_t> v;
    for (int32_t x; v.size() < n && in >> x;) v.push_back(x);
    return v;
}

ModelOptions opts(IoMode io, uint64_t cache = 0, IoEngine engine = IoEngine::Auto) {
    ModelOptions o;
    o.n_threads = 2;
    o.io = io;
    o.expert_cache = cache;
    o.io_engine = engine;
    return o;
}

std::vector<float> logits(const std::string& path, const ModelOptions& o, const std::vector<int32_t>& toks) {
    auto m = load_model(path, o);
    return m->forward_tokens(toks, true);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

uint64_t slot_bytes(const std::string& path) { return load_model(path, opts(IoMode::Direct))->memory().slot_bytes; }

// moe_b with each layer's gate and up experts fused into one ffn_gate_up_exps (gate rows first), the
// layout some converters write: two reads per expert instead of three.
std::string fused_copy(const std::string& fixture) {
    const std::string out = tmp(fixture + "-fused.gguf");
    auto in = gguf::File::open(kFx + fixture + ".gguf");
    gguf::Writer w(out, in->alignment());
    for (const auto& [k, v] : in->metadata()) w.set(k, v);
    auto name_of = [](const std::string& n, const char* from, const char* to) {
        return n.substr(0, n.find(from)) + to + n.substr(n.find(from) + std::strlen(from));
    };
    std::vector<std::vector<const gguf::TensorInfo*>> parts;  // what each output tensor is made of
    for (const gguf::TensorInfo& t : in->tensors()) {
        if (t.name.find("ffn_up_exps") != std::string::npos) continue;
        if (t.name.find("ffn_gate_exps") != std::string::npos) {
            const gguf::TensorInfo* up = in->find_tensor(name_of(t.name, "ffn_gate_exps", "ffn_up_exps"));
            w.add_tensor(name_of(t.name, "ffn_gate_exps", "ffn_gate_up_exps"), t.type, {t.ne[0], 2 * t.ne[1], t.ne[2]});
            parts.push_back({&t, up});
        } else {
            w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims));
            parts.push_back({&t});
        }
    }
    w.begin_data();
    for (const auto& p : parts) {
        if (p.size() == 1) {
            w.write_data(in->data(*p[0]), p[0]->nbytes);
            continue;
        }
        const uint64_t slab = p[0]->nbytes / uint64_t(p[0]->ne[2]);
        for (int64_t e = 0; e < p[0]->ne[2]; ++e)
            for (const gguf::TensorInfo* t : p) w.write_data(in->data(*t) + uint64_t(e) * slab, slab);
    }
    w.finish();
    return out;
}

struct Variant {
    std::string name, path;
};

std::vector<Variant> variants() {
    static std::vector<Variant> v;
    if (v.empty()) {
        for (const char* f : {"moe_a", "moe_b", "moe_c"}) v.push_back({f, kFx + f + ".gguf"});
        v.push_back({"moe_b fused gate_up", fused_copy("moe_b")});
        const std::string q = tmp("moe_b-q8_0.gguf");
        requantize_file(kFx + "moe_b.gguf", q, GgmlType::Q8_0);
        v.push_back({"moe_b q8_0", q});
    }
    return v;
}

TEST(Streaming, BitIdenticalToMmapInEveryModeAndBudget) {
    for (const Variant& v : variants()) {
        const std::vector<int32_t> t = ids(v.name.substr(0, 5));
        const std::vector<float> ref = logits(v.path, opts(IoMode::Mmap), t);
        auto probe = load_model(v.path, opts(IoMode::Direct));
        const Hparams& h = probe->hparams();
        const uint64_t slot = probe->memory().slot_bytes;
        probe.reset();
        const int64_t k = h.n_expert_used;
        // one layer's K experts (every layer evicts the last), fewer than one layer's experts, all
        const std::vector<int64_t> slots = {k, std::min(k + 3, h.n_expert - 1), h.n_layer * h.n_expert};
        for (IoEngine e : {IoEngine::Uring, IoEngine::Pread}) {
            SCOPED_TRACE(v.name + " / " + io_engine_name(e));
            EXPECT_TRUE(same_bits(logits(v.path, opts(IoMode::PageCache, 0, e), t), ref)) << "page-cache";
            for (int64_t n : slots) {
                auto m = load_model(v.path, opts(IoMode::Direct, uint64_t(n) * slot, e));
                EXPECT_EQ(m->memory().cache_slots, n);
                EXPECT_TRUE(same_bits(m->forward_tokens(t, true), ref)) << "direct, " << n << " slots";
            }
        }
    }
}

TEST(Streaming, FusedGateUpMatchesSeparate) {
    const std::vector<int32_t> t = ids("moe_b");
    EXPECT_TRUE(same_bits(logits(variants()[3].path, opts(IoMode::Mmap), t),
                          logits(kFx + "moe_b.gguf", opts(IoMode::Mmap), t)));
}

TEST(Streaming, ExpertsAreNeverMappedOrLoaded) {
    auto m = load_model(kFx + "moe_b.gguf", opts(IoMode::Direct));
    EXPECT_FALSE(m->file().mapped());
    uint64_t dense = 0, experts = 0;
    for (const gguf::TensorInfo& t : m->file().tensors()) (is_routed_expert(t) ? experts : dense) += t.nbytes;
    EXPECT_GT(experts, 0u);
    EXPECT_EQ(m->memory().dense_bytes, m->file().resident_bytes());
    // Page-rounded dense ranges: at most a page more per tensor than the dense bytes themselves.
    EXPECT_GE(m->file().resident_bytes(), dense);
    EXPECT_LE(m->file().resident_bytes(), dense + 2 * 4096 * m->file().tensors().size());
    EXPECT_LT(m->file().resident_bytes(), dense + experts / 2);
    auto mm = load_model(kFx + "moe_b.gguf", opts(IoMode::Mmap));
    EXPECT_TRUE(mm->file().mapped());
}

TEST(ExpertCache, LruEvictsLeastRecentlyUsed) {
    ExpertCache c(3, 100, CachePolicy::Lru);
    for (int64_t key : {1, 2, 3}) {
        EXPECT_FALSE(c.acquire(key).hit);
        c.unpin_all();
    }
    EXPECT_TRUE(c.acquire(1).hit);  // 2 is now the oldest
    c.unpin_all();
    const int64_t s = c.acquire(4).slot;
    EXPECT_EQ(c.key_of(s), 4);
    c.unpin_all();
    EXPECT_TRUE(c.acquire(1).hit);
    EXPECT_TRUE(c.acquire(3).hit);
    EXPECT_FALSE(c.acquire(2).hit);  // evicted above
    EXPECT_EQ(c.hits(), 3u);
    EXPECT_EQ(c.misses(), 5u);
}

TEST(ExpertCache, LfuKeepsFrequentKeysThroughAScan) {
    // Key 7 is used every step; a scan of one-off keys passes by. LRU loses 7 to the scan, LFU keeps it.
    for (CachePolicy p : {CachePolicy::Lru, CachePolicy::Lfu}) {
        ExpertCache c(3, 1000, p);
        for (int i = 0; i < 10; ++i) {
            c.acquire(7);
            c.unpin_all();
        }
        for (int64_t key = 100; key < 104; ++key) {
            c.acquire(key);
            c.unpin_all();
        }
        EXPECT_EQ(c.acquire(7).hit, p == CachePolicy::Lfu) << cache_policy_name(p);
    }
}

TEST(ExpertCache, PinnedSlotsAreNotEvicted) {
    ExpertCache c(2, 10, CachePolicy::Lru);
    const int64_t a = c.acquire(1).slot, b = c.acquire(2).slot;
    EXPECT_NE(a, b);
    EXPECT_THROW(c.acquire(3), Error);  // both pinned by the current layer
    c.unpin_all();
    EXPECT_FALSE(c.acquire(3).hit);
    EXPECT_TRUE(c.acquire(2).hit);  // 1 was older
    c.drop(c.acquire(2).slot);
    c.unpin_all();
    EXPECT_FALSE(c.acquire(2).hit);
}

std::string load_error(const std::string& path, const ModelOptions& o) {
    try {
        load_model(path, o);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(Streaming, MemoryBudgetRefusals) {
    const std::string path = kFx + "moe_b.gguf";
    ModelOptions o = opts(IoMode::Direct);
    o.memory_budget = 1 << 20;  // less than the dense weights plus slack
    std::string msg = load_error(path, o);
    EXPECT_NE(msg.find("--memory 1.00 MiB is too small"), std::string::npos) << msg;
    EXPECT_NE(msg.find("dense weights"), std::string::npos) << msg;
    EXPECT_NE(msg.find("must stay resident"), std::string::npos) << msg;

    // Enough for the dense weights, not for them plus the KV cache, the process and K experts.
    o.memory_budget = 97 << 20;
    msg = load_error(path, o);
    EXPECT_NE(msg.find("after loading"), std::string::npos) << msg;
    EXPECT_NE(msg.find("experts one layer uses at once"), std::string::npos) << msg;

    o.memory_budget = 0;
    o.expert_cache = 1;
    msg = load_error(path, o);
    EXPECT_NE(msg.find("one layer uses 8 at once"), std::string::npos) << msg;

    // A budget that fits: the cache takes what is left, RSS measured within it.
    o.expert_cache = 0;
    o.memory_budget = 1ull << 30;
    auto m = load_model(path, o);
    EXPECT_LE(m->memory().rss_bytes, o.memory_budget);
    EXPECT_GT(m->memory().expert_cache_bytes, 0u);
    EXPECT_NE(describe(m->memory()).find("RSS measured"), std::string::npos);

    o.io = IoMode::Mmap;
    o.memory_budget = 1 << 20;
    msg = load_error(path, o);
    EXPECT_NE(msg.find("too small"), std::string::npos) << msg;
}

TEST(Streaming, AutoMapsFilesThatFitAndStreamsOthers) {
    ModelOptions o;
    auto m = load_model(kFx + "moe_b.gguf", o);
    EXPECT_EQ(m->memory().mode, IoMode::Mmap);
    o.memory_budget = 200 << 20;  // the file (1.4 MiB) fits
    EXPECT_EQ(load_model(kFx + "moe_b.gguf", o)->memory().mode, IoMode::Mmap);
    // Dense-only models have nothing to stream.
    o.io = IoMode::Direct;
    o.memory_budget = 0;
    EXPECT_EQ(load_model(kFx + "dense_a.gguf", o)->memory().mode, IoMode::Mmap);
}

TEST(Streaming, ExpertsPerToken) {
    const std::string path = kFx + "moe_b.gguf";  // 64 experts, 8 used
    const std::vector<int32_t> t = ids("moe_b", 8);
    for (int64_t bad : {int64_t(-1), int64_t(65), int64_t(1000)}) {
        ModelOptions o;
        o.experts_per_token = bad;
        const std::string msg = load_error(path, o);
        EXPECT_NE(msg.find("--experts-per-token " + std::to_string(bad) + " is out of range"), std::string::npos) << msg;
        EXPECT_NE(msg.find("between 1 and 64"), std::string::npos) << msg;
    }
    const std::vector<float> def = logits(path, opts(IoMode::Mmap), t);
    for (int64_t k : {1, 3, 8, 64}) {
        ModelOptions o = opts(IoMode::Mmap);
        o.experts_per_token = k;
        auto m = load_model(path, o);
        const std::vector<float> mm = m->forward_tokens(t, true);
        EXPECT_EQ(m->stats()->read().experts_per_token, k);
        EXPECT_EQ(same_bits(mm, def), k == 8) << "K " << k;
        for (IoMode io : {IoMode::PageCache, IoMode::Direct}) {
            o.io = io;
            EXPECT_TRUE(same_bits(logits(path, o, t), mm)) << "K " << k << " " << io_mode_name(io);
        }
    }
    // The kept weights are renormalised: with K = n_expert every expert counts with its softmax weight.
    std::vector<float> lg = {1.0f, 2.0f, 0.5f, -1.0f};
    int32_t id[4];
    float w[4];
    router_topk_softmax(lg.data(), 4, 2, true, id, w);
    EXPECT_FLOAT_EQ(w[0] + w[1], 1.0f);
    EXPECT_EQ(id[0], 1);
    EXPECT_EQ(id[1], 0);
}

// Per (layer, expert) miss, what a direct read fetches: each slab's 4 KiB-aligned span.
uint64_t direct_read_bytes(const gguf::File& f, int64_t layer, int64_t e) {
    uint64_t n = 0;
    for (const char* name : {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"}) {
        const gguf::TensorInfo* t = f.find_tensor("blk." + std::to_string(layer) + "." + name + ".weight");
        const uint64_t slab = t->nbytes / uint64_t(t->ne[2]), off = t->offset + uint64_t(e) * slab;
        n += (off + slab + 4095) / 4096 * 4096 - off / 4096 * 4096;
    }
    return n;
}

TEST(Streaming, StatisticsAddUp) {
    const std::string path = kFx + "moe_b.gguf";
    const std::vector<int32_t> t = ids("moe_b", 12);
    const uint64_t slot = slot_bytes(path);
    for (CachePolicy p : {CachePolicy::Lru, CachePolicy::Lfu}) {
        ModelOptions o = opts(IoMode::Direct, 20 * slot);
        o.cache_policy = p;
        o.prefetch = false;  // guesses change what is cached; checked below
        o.prefill_chunk = 1;  // token by token: the trace replays one token after another
        o.stats = std::make_shared<StatsBoard>();  // the UI's board, handed in
        auto m = load_model(path, o);
        EXPECT_EQ(m->stats(), o.stats);
        m->recorder().keep_trace(true);
        const uint64_t v0 = o.stats->version();
        m->forward_tokens(t, false);
        EXPECT_EQ(o.stats->version(), v0 + t.size() + 1);  // one per token, one at the prompt's end
        for (int i = 0; i < 4; ++i) m->forward(t[size_t(i)]);
        const StatsSnapshot s = o.stats->read();
        const Hparams& h = m->hparams();
        const uint64_t lookups = uint64_t(t.size() + 4) * uint64_t(h.n_layer * h.n_expert_used);
        EXPECT_EQ(s.expert_hits + s.expert_misses, lookups);
        EXPECT_EQ(m->recorder().trace().size(), lookups);
        // Replaying the routing through the same policy gives the same misses; their slabs are the bytes.
        ExpertCache c(20, h.n_layer * h.n_expert, p);
        uint64_t bytes = 0, misses = 0;
        const auto& tr = m->recorder().trace();
        for (size_t i = 0; i < tr.size(); i += size_t(h.n_expert_used)) {
            c.unpin_all();
            for (size_t j = i; j < i + size_t(h.n_expert_used); ++j)
                if (!c.acquire(tr[j]).hit) {
                    ++misses;
                    bytes += direct_read_bytes(m->file(), tr[j] / h.n_expert, tr[j] % h.n_expert);
                }
        }
        EXPECT_EQ(s.expert_misses, misses) << cache_policy_name(p);
        EXPECT_EQ(s.bytes_read_total, bytes) << cache_policy_name(p);
        EXPECT_EQ(s.reads_total, 3 * misses);
        EXPECT_EQ(s.tokens_generated, 4);
        EXPECT_EQ(s.n_ctx_used, int64_t(t.size() + 4));
        EXPECT_EQ(s.phase, StatsSnapshot::Phase::Decode);
        EXPECT_STREQ(s.io_mode, "direct");
        EXPECT_STREQ(s.hit_rate_source, "own cache");
        EXPECT_GT(s.rss_bytes, 0u);
        EXPECT_GT(s.tok_s, 0);
        EXPECT_GE(s.t_token, s.t_attention + s.t_experts_compute + s.t_experts_wait);
        EXPECT_GT(s.routing_distinct, 0);
        EXPECT_LE(s.routing_overlap, double(h.n_expert_used));
    }
    // With prefetch, guessed experts are read too, counted apart and in the totals.
    {
        ModelOptions o = opts(IoMode::Direct, 40 * slot);
        o.prefill_chunk = 1;  // decode-time guesses (a chunk guesses for all its tokens: test_prefill)
        auto m = load_model(path, o);
        m->forward_tokens(t, false);
        const StatsSnapshot s = m->stats()->read();
        EXPECT_GT(s.prefetch_experts_total, 0u);
        EXPECT_GT(s.prefetch_bytes_total, 0u);
        EXPECT_LE(s.prefetch_bytes_total, s.bytes_read_total);
        EXPECT_GE(s.guess_accuracy, 0.0);
        EXPECT_LE(s.guess_accuracy, 1.0);
    }
    // Page cache: every lookup is a probe hit or a miss; a miss reads at most the slab.
    ModelOptions pc = opts(IoMode::PageCache);
    pc.prefetch = false;
    pc.prefill_chunk = 1;  // a lookup per token and layer (a chunk looks each expert up once)
    auto m = load_model(path, pc);
    m->forward_tokens(t, false);
    const StatsSnapshot s = m->stats()->read();
    const Hparams& h = m->hparams();
    EXPECT_EQ(s.expert_hits + s.expert_misses, uint64_t(t.size()) * uint64_t(h.n_layer * h.n_expert_used));
    EXPECT_LE(s.bytes_read_total, s.expert_misses * 3 * 2048);  // slabs of moe_b: 2 KiB each
    EXPECT_TRUE(s.hit_rate_estimated);
    EXPECT_STREQ(s.io_mode, "page-cache");
}

TEST(Streaming, ReadErrorStopsTheTokenAndTheConversationGoesOn) {
    const std::string path = kFx + "moe_b.gguf";
    const std::vector<int32_t> t = ids("moe_b", 10);
    const std::vector<float> ref = logits(path, opts(IoMode::Mmap), t);
    const size_t nv = ref.size() / t.size();
    for (IoMode io : {IoMode::Direct, IoMode::PageCache}) {
        for (IoEngine e : {IoEngine::Uring, IoEngine::Pread}) {
            SCOPED_TRACE(std::string(io_mode_name(io)) + " / " + io_engine_name(e));
            auto armed = std::make_shared<std::atomic<bool>>(false);
            ModelOptions o = opts(io, io == IoMode::Direct ? 8 * slot_bytes(path) : 0, e);
            o.read_fault = [armed](uint64_t, uint64_t) { return armed->load() ? EIO : 0; };
            auto m = load_model(path, o);
            m->forward_tokens(std::span(t).first(5), false);
            armed->store(true);
            try {
                m->forward(t[5]);
                ADD_FAILURE() << "no error";
            } catch (const Error& err) {
                const std::string msg = err.what();
                EXPECT_NE(msg.find(path), std::string::npos) << msg;
                EXPECT_NE(msg.find("at offset"), std::string::npos) << msg;
                EXPECT_NE(msg.find("Input/output error"), std::string::npos) << msg;
            }
            EXPECT_EQ(m->n_past(), 5);
            armed->store(false);
            for (size_t i = 5; i < t.size(); ++i) {
                const float* l = m->forward(t[i]);
                EXPECT_EQ(std::memcmp(l, &ref[i * nv], nv * sizeof(float)), 0) << "position " << i;
            }
        }
    }
}

TEST(Streaming, FileTruncatedWhileRunning) {
    const std::vector<int32_t> t = ids("moe_b", 10);
    const std::vector<float> ref = logits(kFx + "moe_b.gguf", opts(IoMode::Mmap), t);
    const size_t nv = ref.size() / t.size();
    std::ifstream in(kFx + "moe_b.gguf", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (IoMode io : {IoMode::Direct, IoMode::PageCache}) {
        SCOPED_TRACE(io_mode_name(io));
        const std::string path = tmp("trunc.gguf");
        std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
        auto m = load_model(path, opts(io, io == IoMode::Direct ? 8 * slot_bytes(path) : 0));
        m->forward_tokens(std::span(t).first(5), false);
        ASSERT_EQ(truncate(path.c_str(), off_t(m->file().data_offset())), 0);
        try {
            m->forward(t[5]);
            ADD_FAILURE() << "no error";
        } catch (const Error& err) {
            const std::string msg = err.what();
            EXPECT_NE(msg.find(path), std::string::npos) << msg;
            EXPECT_NE(msg.find("unexpected end of file"), std::string::npos) << msg;
        }
        // The file comes back (same inode): the conversation continues where it stopped.
        std::ofstream(path, std::ios::binary | std::ios::in).write(bytes.data(), std::streamsize(bytes.size()));
        for (size_t i = 5; i < t.size(); ++i) {
            const float* l = m->forward(t[i]);
            EXPECT_EQ(std::memcmp(l, &ref[i * nv], nv * sizeof(float)), 0) << "position " << i;
        }
        std::filesystem::remove(path);
    }
}

TEST(Streaming, FileReplacedWhileRunningIsNotSeen) {
    // A new file renamed over the path (a re-download, a re-quantization) does not change the model
    // being run: experts are read through the descriptor opened at load.
    const std::vector<int32_t> t = ids("moe_b", 10);
    const std::vector<float> ref = logits(kFx + "moe_b.gguf", opts(IoMode::Mmap), t);
    const size_t nv = ref.size() / t.size();
    for (IoMode io : {IoMode::Direct, IoMode::PageCache}) {
        const std::string path = tmp("replaced.gguf");
        std::filesystem::copy_file(kFx + "moe_b.gguf", path, std::filesystem::copy_options::overwrite_existing);
        auto m = load_model(path, opts(io, io == IoMode::Direct ? 8 * slot_bytes(path) : 0));
        m->forward_tokens(std::span(t).first(5), false);
        std::filesystem::copy_file(kFx + "moe_a.gguf", path + ".new", std::filesystem::copy_options::overwrite_existing);
        std::filesystem::rename(path + ".new", path);
        for (size_t i = 5; i < t.size(); ++i) {
            const float* l = m->forward(t[i]);
            EXPECT_EQ(std::memcmp(l, &ref[i * nv], nv * sizeof(float)), 0) << io_mode_name(io) << " position " << i;
        }
        std::filesystem::remove(path);
    }
}

TEST(GgufUnmapped, HeaderLargerThanTheFirstWindow) {
    const std::string path = tmp("bigheader.gguf");
    {
        gguf::Writer w(path);
        std::vector<std::string> words;
        for (int i = 0; i < 300000; ++i) words.push_back("token-" + std::to_string(i));  // ~4.5 MiB of header
        w.set_str("general.architecture", "none");
        w.set_str_array("tokenizer.ggml.tokens", words);
        w.add_tensor("x", GgmlType::F32, {8});
        w.begin_data();
        const float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        w.write_data(x, sizeof x);
        w.finish();
    }
    auto a = gguf::File::open(path);
    for (uint64_t window : {uint64_t(64), uint64_t(4) << 20}) {
        auto b = gguf::File::open(path, {.map = false, .header_window = window});
        EXPECT_EQ(b->get_string_array("tokenizer.ggml.tokens"), a->get_string_array("tokenizer.ggml.tokens"));
        EXPECT_EQ(b->data_offset(), a->data_offset());
        b->load_resident([](const gguf::TensorInfo&) { return true; }, false);
        EXPECT_EQ(std::memcmp(b->data(b->tensors()[0]), a->data(a->tensors()[0]), 32), 0);
    }
    std::filesystem::remove(path);
}

}  // namespace
}  // namespace sluice
