// sluice gen-model: writes a random-weight GGUF of any size in llama.cpp's layout, streaming to disk.
//
// Quantized tensors are assembled from a pool of really quantized blocks (gaussian rows through the
// reference quantizer), picked at random per block: every row is different, every block valid, and a
// 17 GB model is written at disk speed instead of the reference quantizer's ~15 M values/s.
// Scales follow facts.md's "honest streaming" recipe by default: token_embd std 1.0, attn_output and
// ffn_down std 0.002, the rest 1/sqrt(fan_in); with all weights at std 0.02 routing collapses onto a
// few experts and a cache would look perfect.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <vector>

#include "app/args.h"
#include "engine/gguf/quant_plan.h"
#include "app/verbs.h"
#include "engine/error.h"
#include "engine/gguf/gguf.h"
#include "engine/model_info.h"
#include "engine/tensor/kernels.h"
#include "engine/text/gen_vocab.h"

namespace sluice {

namespace {

struct Rng {  // xoshiro256**: fast enough to fill GBs of floats
    uint64_t s[4];
    explicit Rng(uint64_t seed) {
        for (auto& x : s) {  // splitmix64 seeding
            seed += 0x9e3779b97f4a7c15ull;
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            x = z ^ (z >> 31);
        }
    }
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t next() {
        const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
        return r;
    }
    float uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }  // [0, 1)
    void gaussian(float* out, int64_t n, float std) {  // Box-Muller
        for (int64_t i = 0; i < n; i += 2) {
            const float u1 = 1.0f - uniform(), u2 = uniform();
            const float r = std * std::sqrt(-2.0f * std::log(u1));
            out[i] = r * std::cos(6.2831853f * u2);
            if (i + 1 < n) out[i + 1] = r * std::sin(6.2831853f * u2);
        }
    }
};

struct TensorSpec {
    std::string name;
    std::vector<int64_t> ne;
    float std;
    GgmlType type;
};

// Blocks of one (type, std), really quantized, to draw rows from.
class BlockPool {
public:
    BlockPool(GgmlType t, float std, Rng& rng) : type_(t), bsize_(type_info(t).type_size) {
        const int64_t bs = type_info(t).block_size, n_blocks = 4096;
        std::vector<float> f(size_t(bs * n_blocks));
        rng.gaussian(f.data(), int64_t(f.size()), std);
        data_.resize(size_t(n_blocks * bsize_));
        quantize_row(t, f.data(), data_.data(), int64_t(f.size()));
    }
    void fill_row(uint8_t* dst, int64_t n_blocks, Rng& rng) const {
        const uint64_t pool_blocks = data_.size() / size_t(bsize_);
        for (int64_t b = 0; b < n_blocks; ++b)
            std::memcpy(dst + b * bsize_, data_.data() + (rng.next() % pool_blocks) * uint64_t(bsize_), size_t(bsize_));
    }

private:
    GgmlType type_;
    int64_t bsize_;
    std::vector<uint8_t> data_;
};

std::vector<TensorSpec> qwen3_tensors(const Args& a, bool moe, int64_t n_vocab, GgmlType type) {
    const int64_t L = a.i64("--layers", 4), E = a.i64("--embd", 256), H = a.i64("--heads", 4),
                  Hkv = a.i64("--kv-heads", 2), D = a.i64("--head-dim", E / H);
    const int64_t X = a.i64("--experts", 8), FE = a.i64("--ff-exp", 128), F = a.i64("--ff", 4 * E);
    const float emb_std = float(a.f64("--embd-std", 1.0)), out_std = float(a.f64("--out-std", 0.002));
    auto inv = [](int64_t fan_in) { return float(1.0 / std::sqrt(double(fan_in))); };
    std::vector<TensorSpec> t;
    auto add = [&](std::string n, std::vector<int64_t> ne, float std) {
        t.push_back({n, ne, std, plan_type(n, ne.data(), uint32_t(ne.size()), type)});
    };
    add("token_embd.weight", {E, n_vocab}, emb_std);
    for (int64_t i = 0; i < L; ++i) {
        const std::string b = "blk." + std::to_string(i) + ".";
        add(b + "attn_norm.weight", {E}, 0);
        add(b + "attn_q.weight", {E, H * D}, inv(E));
        add(b + "attn_k.weight", {E, Hkv * D}, inv(E));
        add(b + "attn_v.weight", {E, Hkv * D}, inv(E));
        add(b + "attn_output.weight", {H * D, E}, out_std);
        add(b + "attn_q_norm.weight", {D}, 0);
        add(b + "attn_k_norm.weight", {D}, 0);
        add(b + "ffn_norm.weight", {E}, 0);
        if (moe) {
            add(b + "ffn_gate_inp.weight", {E, X}, inv(E));
            add(b + "ffn_gate_exps.weight", {E, FE, X}, inv(E));
            add(b + "ffn_up_exps.weight", {E, FE, X}, inv(E));
            add(b + "ffn_down_exps.weight", {FE, E, X}, out_std);
        } else {
            add(b + "ffn_gate.weight", {E, F}, inv(E));
            add(b + "ffn_up.weight", {E, F}, inv(E));
            add(b + "ffn_down.weight", {F, E}, out_std);
        }
    }
    add("output_norm.weight", {E}, 0);
    if (!a.has("--tied")) add("output.weight", {E, n_vocab}, inv(E));
    return t;
}

}  // namespace

int verb_gen_model(int argc, char** argv) {
    Args a(argc, argv,
           {"--arch", "--layers", "--embd", "--heads", "--kv-heads", "--head-dim", "--experts", "--used",
            "--ff-exp", "--ff", "--vocab", "--ctx", "--type", "--out", "--seed", "--tokenizer", "--embd-std",
            "--out-std", "--rope-base"},
           {"--tied", "--dry-run"});
    const std::string arch = a.str("--arch", "qwen3moe");
    if (arch != "qwen3moe" && arch != "qwen3")
        throw Error("--arch '" + arch + "': gen-model writes qwen3moe or qwen3");
    const bool moe = arch == "qwen3moe";
    const std::string type_s = a.str("--type", "q4_K");
    const auto type = type_from_name(type_s);
    if (!type || !type_info(*type).has_kernels) throw Error("--type '" + type_s + "' is not a type sluice can write");
    const std::string out = a.required("--out");

    const text::Vocab vocab = a.has("--tokenizer") ? text::from_hf_json(a.str("--tokenizer"))
                                                   : text::byte_vocab(a.i64("--vocab", 1024));
    const int64_t n_vocab = int64_t(vocab.tokens.size());
    const std::vector<TensorSpec> specs = qwen3_tensors(a, moe, n_vocab, *type);

    const int64_t L = a.i64("--layers", 4), E = a.i64("--embd", 256), H = a.i64("--heads", 4);
    const int64_t X = a.i64("--experts", 8), K = a.i64("--used", 2);
    if (L < 1 || E < 1 || H < 1 || a.i64("--kv-heads", 2) < 1 || H % a.i64("--kv-heads", 2) != 0)
        throw Error("gen-model: layers, embd, heads must be >= 1 and heads a multiple of kv-heads");
    if (moe && (X < 1 || K < 1 || K > X)) throw Error("gen-model: need 1 <= --used <= --experts");

    gguf::Writer w(out);
    w.set_str("general.architecture", arch);
    w.set_str("general.name", "sluice gen-model " + arch);
    w.set_u32("general.file_type", file_type_of(*type));
    const std::string p = arch + ".";
    w.set_u32(p + "context_length", uint32_t(a.i64("--ctx", 4096)));
    w.set_u32(p + "embedding_length", uint32_t(E));
    w.set_u32(p + "block_count", uint32_t(L));
    w.set_u32(p + "feed_forward_length", uint32_t(a.i64("--ff", 4 * E)));
    w.set_u32(p + "attention.head_count", uint32_t(H));
    w.set_u32(p + "attention.head_count_kv", uint32_t(a.i64("--kv-heads", 2)));
    w.set_u32(p + "attention.key_length", uint32_t(a.i64("--head-dim", E / H)));
    w.set_u32(p + "attention.value_length", uint32_t(a.i64("--head-dim", E / H)));
    w.set_f32(p + "rope.freq_base", float(a.f64("--rope-base", 1000000.0)));
    w.set_f32(p + "attention.layer_norm_rms_epsilon", 1e-6f);
    if (moe) {
        w.set_u32(p + "expert_count", uint32_t(X));
        w.set_u32(p + "expert_used_count", uint32_t(K));
        w.set_u32(p + "expert_feed_forward_length", uint32_t(a.i64("--ff-exp", 128)));
    }
    text::add_to_gguf(vocab, w);
    for (const TensorSpec& t : specs) w.add_tensor(t.name, t.type, t.ne);

    uint64_t total = 0;
    for (const TensorSpec& t : specs) {
        int64_t n = 1;
        for (int64_t d : t.ne) n *= d;
        total += uint64_t(row_bytes(t.type, t.ne[0]) * (n / t.ne[0]));
    }
    if (a.has("--dry-run")) {
        std::printf("%s: %zu tensors, %s of weights (not written)\n", out.c_str(), specs.size(), format_bytes(total).c_str());
        return 0;
    }
    w.begin_data();

    Rng rng(uint64_t(a.i64("--seed", 42)));
    std::map<std::pair<GgmlType, float>, BlockPool> pools;
    std::vector<float> frow;
    std::vector<uint8_t> qrow;
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t written = 0, next_report = 1ull << 30;
    for (const TensorSpec& t : specs) {
        const int64_t cols = t.ne[0];
        int64_t rows = 1;
        for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];
        const int64_t rb = row_bytes(t.type, cols);
        qrow.resize(size_t(rb));
        frow.resize(size_t(cols));
        const bool quant = type_info(t.type).block_size > 1;
        const BlockPool* pool = nullptr;
        if (quant) pool = &pools.try_emplace({t.type, t.std}, t.type, t.std, rng).first->second;
        for (int64_t r = 0; r < rows; ++r) {
            if (quant) {
                pool->fill_row(qrow.data(), cols / type_info(t.type).block_size, rng);
            } else {
                if (t.std == 0.0f) std::fill(frow.begin(), frow.end(), 1.0f);  // norms
                else rng.gaussian(frow.data(), cols, t.std);
                quantize_row(t.type, frow.data(), qrow.data(), cols);
            }
            w.write_data(qrow.data(), qrow.size());
        }
        written += uint64_t(rb * rows);
        if (written >= next_report) {
            std::fprintf(stderr, "\r  %s / %s", format_bytes(written).c_str(), format_bytes(total).c_str());
            next_report += 1ull << 30;
        }
    }
    w.finish();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "\rwrote %s: %s %s, %zu tensors, %s in %.1f s\n", out.c_str(), arch.c_str(), type_name(*type),
                 specs.size(), format_bytes(total).c_str(), s);
    return 0;
}

}  // namespace sluice
