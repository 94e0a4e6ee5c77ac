// sluice gen-model: writes a random-weight GGUF of any size in llama.cpp's layout, streaming to disk.
// Architectures: qwen3moe, qwen3 (dense), deepseek2 (MLA), qwen35moe (hybrid GatedDeltaNet; `--like qwen3.5-397b`
// gives the real model's shapes). --dry-run writes the header only (a sparse file of the full size
// that `sluice info` reads) and prints what a token reads.
//
// Quantized tensors are assembled from a pool of really quantized blocks (gaussian rows through the
// reference quantizer), picked at random per block: every row is different, every block valid, and a
// 17 GB model is written at disk speed instead of the reference quantizer's ~15 M values/s.
// Scales follow facts.md's "honest streaming" recipe by default: token_embd std 1.0, attn_output and
// ffn_down std 0.002, the rest 1/sqrt(fan_in); with all weights at std 0.02 routing collapses onto a
// few experts and a cache would look perfect.
#include <chrono>
#include <cmath>
#include <functional>
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
    float std;          // 0: every value is `fill` (norms 1, ssm_a a negative decay rate)
    GgmlType type;
    float fill = 1.0f;
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

// The tensors a builder lists, each with the type plan_type() gives it for the requested one.
struct Specs {
    GgmlType type;
    std::vector<TensorSpec> list;
    void add(std::string n, std::vector<int64_t> ne, float std, float fill = 1.0f) {
        list.push_back({n, ne, std, plan_type(n, ne.data(), uint32_t(ne.size()), type), fill});
    }
    // Block b's SwiGLU of width f: ffn_gate<sfx>, ffn_up<sfx>, ffn_down<sfx>.
    void glu(const std::string& b, const char* sfx, int64_t e, int64_t f, float out_std);
    // output_norm, then output unless --tied.
    void head(const Args& a, int64_t e, int64_t n_vocab);
};
float inv_sqrt(int64_t fan_in) { return float(1.0 / std::sqrt(double(fan_in))); }
void Specs::glu(const std::string& b, const char* sfx, int64_t e, int64_t f, float out_std) {
    add(b + "ffn_gate" + sfx + ".weight", {e, f}, inv_sqrt(e));
    add(b + "ffn_up" + sfx + ".weight", {e, f}, inv_sqrt(e));
    add(b + "ffn_down" + sfx + ".weight", {f, e}, out_std);
}
void Specs::head(const Args& a, int64_t e, int64_t n_vocab) {
    add("output_norm.weight", {e}, 0);
    if (!a.has("--tied")) add("output.weight", {e, n_vocab}, inv_sqrt(e));
}

std::vector<TensorSpec> qwen3_tensors(const Args& a, bool moe, int64_t n_vocab, GgmlType type) {
    const int64_t L = a.i64("--layers", 4), E = a.i64("--embd", 256), H = a.i64("--heads", 4),
                  Hkv = a.i64("--kv-heads", 2), D = a.i64("--head-dim", E / H);
    const int64_t X = a.i64("--experts", 8), FE = a.i64("--ff-exp", 128), F = a.i64("--ff", 4 * E);
    const float emb_std = float(a.f64("--embd-std", 1.0)), out_std = float(a.f64("--out-std", 0.002));
    Specs t{type, {}};
    t.add("token_embd.weight", {E, n_vocab}, emb_std);
    for (int64_t i = 0; i < L; ++i) {
        const std::string b = "blk." + std::to_string(i) + ".";
        t.add(b + "attn_norm.weight", {E}, 0);
        t.add(b + "attn_q.weight", {E, H * D}, inv_sqrt(E));
        t.add(b + "attn_k.weight", {E, Hkv * D}, inv_sqrt(E));
        t.add(b + "attn_v.weight", {E, Hkv * D}, inv_sqrt(E));
        t.add(b + "attn_output.weight", {H * D, E}, out_std);
        t.add(b + "attn_q_norm.weight", {D}, 0);
        t.add(b + "attn_k_norm.weight", {D}, 0);
        t.add(b + "ffn_norm.weight", {E}, 0);
        if (moe) {
            t.add(b + "ffn_gate_inp.weight", {E, X}, inv_sqrt(E));
            t.add(b + "ffn_gate_exps.weight", {E, FE, X}, inv_sqrt(E));
            t.add(b + "ffn_up_exps.weight", {E, FE, X}, inv_sqrt(E));
            t.add(b + "ffn_down_exps.weight", {FE, E, X}, out_std);
        } else {
            t.glu(b, "", E, F, out_std);
        }
    }
    t.head(a, E, n_vocab);
    return t.list;
}

// Shapes of Qwen3.5-397B-A17B (facts.md; HF config): `--like qwen3.5-397b` makes them the defaults.
const std::map<std::string, int64_t> kQwen35_397b = {
    {"--layers", 60}, {"--embd", 4096}, {"--heads", 32}, {"--kv-heads", 2}, {"--head-dim", 256},
    {"--experts", 512}, {"--used", 10}, {"--ff-exp", 1024}, {"--ff-shexp", 1024}, {"--vocab", 248320},
    {"--ssm-k-heads", 16}, {"--ssm-v-heads", 64}, {"--ssm-head-dim", 128}, {"--conv-kernel", 4},
    {"--full-every", 4}, {"--ctx", 262144}};

// Shapes of DeepSeek-V3 (HF config; Kimi K2 is this with 384 experts, 64 heads, 1 dense layer, no groups).
const std::map<std::string, int64_t> kDeepseekV3 = {
    {"--layers", 61}, {"--embd", 7168}, {"--heads", 128}, {"--head-dim", 192}, {"--v-head-dim", 128},
    {"--rope-dims", 64}, {"--q-lora", 1536}, {"--kv-lora", 512}, {"--experts", 256}, {"--used", 8},
    {"--ff-exp", 2048}, {"--shared", 1}, {"--dense-lead", 3}, {"--ff", 18432}, {"--groups", 8},
    {"--groups-used", 4}, {"--vocab", 129280}, {"--ctx", 163840}};

// Qwen3.5-MoE in the converter's layout: every --full-every-th layer gated full attention (q_proj
// carries the output gate), the others GatedDeltaNet; routed experts plus a gated shared expert.
std::vector<TensorSpec> qwen35_tensors(const std::function<int64_t(const char*, int64_t)>& arg, const Args& a,
                                       int64_t n_vocab, GgmlType type) {
    const int64_t L = arg("--layers", 4), E = arg("--embd", 256), H = arg("--heads", 4), Hkv = arg("--kv-heads", 2),
                  D = arg("--head-dim", E / H), X = arg("--experts", 8), FE = arg("--ff-exp", 128),
                  FS = arg("--ff-shexp", FE), NK = arg("--ssm-k-heads", 2), NV = arg("--ssm-v-heads", 4),
                  DS = arg("--ssm-head-dim", 32), K = arg("--conv-kernel", 4), every = arg("--full-every", 4);
    const float emb_std = float(a.f64("--embd-std", 1.0)), out_std = float(a.f64("--out-std", 0.002));
    const int64_t conv_dim = 2 * NK * DS + NV * DS;
    Specs t{type, {}};
    t.add("token_embd.weight", {E, n_vocab}, emb_std);
    for (int64_t i = 0; i < L; ++i) {
        const std::string b = "blk." + std::to_string(i) + ".";
        t.add(b + "attn_norm.weight", {E}, 0);
        t.add(b + "post_attention_norm.weight", {E}, 0);
        if ((i + 1) % every != 0) {
            t.add(b + "attn_qkv.weight", {E, conv_dim}, inv_sqrt(E));
            t.add(b + "attn_gate.weight", {E, NV * DS}, inv_sqrt(E));
            t.add(b + "ssm_conv1d.weight", {K, conv_dim}, inv_sqrt(K));
            t.add(b + "ssm_dt.bias", {NV}, 0);
            t.add(b + "ssm_a", {NV}, 0, -0.5f);  // decay exp(-0.5 softplus(a + 1)): a few tokens of memory
            t.add(b + "ssm_beta.weight", {E, NV}, inv_sqrt(E));
            t.add(b + "ssm_alpha.weight", {E, NV}, inv_sqrt(E));
            t.add(b + "ssm_norm.weight", {DS}, 0);
            t.add(b + "ssm_out.weight", {NV * DS, E}, out_std);
        } else {
            t.add(b + "attn_q.weight", {E, 2 * H * D}, inv_sqrt(E));
            t.add(b + "attn_k.weight", {E, Hkv * D}, inv_sqrt(E));
            t.add(b + "attn_v.weight", {E, Hkv * D}, inv_sqrt(E));
            t.add(b + "attn_output.weight", {H * D, E}, out_std);
            t.add(b + "attn_q_norm.weight", {D}, 0);
            t.add(b + "attn_k_norm.weight", {D}, 0);
        }
        t.add(b + "ffn_gate_inp.weight", {E, X}, inv_sqrt(E));
        t.add(b + "ffn_gate_exps.weight", {E, FE, X}, inv_sqrt(E));
        t.add(b + "ffn_up_exps.weight", {E, FE, X}, inv_sqrt(E));
        t.add(b + "ffn_down_exps.weight", {FE, E, X}, out_std);
        t.add(b + "ffn_gate_inp_shexp.weight", {E, 1}, inv_sqrt(E));
        t.glu(b, "_shexp", E, FS, out_std);
    }
    t.head(a, E, n_vocab);
    return t.list;
}

// DeepSeek-V2/V3 (Kimi K2) in the converter's layout since attn_kv_b was split: MLA (a latent of
// --kv-lora with --rope-dims of shared rotary key; per head --head-dim key dims including those, and
// --v-head-dim value dims), q through a --q-lora bottleneck (0: one attn_q), --dense-lead dense layers,
// then routed experts with --shared shared ones; sigmoid routing adds exp_probs_b, as V3's files do.
struct Ds2Shape {  // its flags, read once (defaults: a small model) for the tensors, the checks and the keys
    int64_t dk, dv, rope, q_lora, kv_lora, shared, lead, groups, groups_used;
    bool sigmoid;
};
Ds2Shape ds2_shape(const std::function<int64_t(const char*, int64_t)>& arg, const Args& a) {
    const std::string gating = a.str("--gating", "sigmoid");
    if (gating != "sigmoid" && gating != "softmax")
        throw Error("gen-model deepseek2: --gating is sigmoid or softmax");
    return {arg("--head-dim", 64), arg("--v-head-dim", 32), arg("--rope-dims", 16),
            arg("--q-lora", 0),    arg("--kv-lora", 64),    arg("--shared", 1),
            arg("--dense-lead", 1), arg("--groups", 1),     arg("--groups-used", 1),
            gating == "sigmoid"};
}

std::vector<TensorSpec> deepseek2_tensors(const std::function<int64_t(const char*, int64_t)>& arg, const Args& a,
                                          const Ds2Shape& d, int64_t n_vocab, GgmlType type) {
    const int64_t L = arg("--layers", 4), E = arg("--embd", 256), H = arg("--heads", 4), X = arg("--experts", 8),
                  FE = arg("--ff-exp", 128), F = arg("--ff", 4 * E);
    const int64_t Dk = d.dk, Dv = d.dv, R = d.rope, QL = d.q_lora, KVL = d.kv_lora, S = d.shared, lead = d.lead;
    const float emb_std = float(a.f64("--embd-std", 1.0)), out_std = float(a.f64("--out-std", 0.002));
    Specs t{type, {}};
    t.add("token_embd.weight", {E, n_vocab}, emb_std);
    for (int64_t i = 0; i < L; ++i) {
        const std::string b = "blk." + std::to_string(i) + ".";
        t.add(b + "attn_norm.weight", {E}, 0);
        if (QL > 0) {
            t.add(b + "attn_q_a.weight", {E, QL}, inv_sqrt(E));
            t.add(b + "attn_q_a_norm.weight", {QL}, 0);
            t.add(b + "attn_q_b.weight", {QL, H * Dk}, inv_sqrt(QL));
        } else {
            t.add(b + "attn_q.weight", {E, H * Dk}, inv_sqrt(E));
        }
        t.add(b + "attn_kv_a_mqa.weight", {E, KVL + R}, inv_sqrt(E));
        t.add(b + "attn_kv_a_norm.weight", {KVL}, 0);
        t.add(b + "attn_k_b.weight", {Dk - R, KVL, H}, inv_sqrt(Dk - R));
        t.add(b + "attn_v_b.weight", {KVL, Dv, H}, inv_sqrt(KVL));
        t.add(b + "attn_output.weight", {H * Dv, E}, out_std);
        t.add(b + "ffn_norm.weight", {E}, 0);
        if (i < lead) {
            t.glu(b, "", E, F, out_std);
            continue;
        }
        t.add(b + "ffn_gate_inp.weight", {E, X}, inv_sqrt(E));
        if (d.sigmoid) t.add(b + "exp_probs_b.bias", {X}, 0.01f);
        t.add(b + "ffn_gate_exps.weight", {E, FE, X}, inv_sqrt(E));
        t.add(b + "ffn_up_exps.weight", {E, FE, X}, inv_sqrt(E));
        t.add(b + "ffn_down_exps.weight", {FE, E, X}, out_std);
        if (S > 0) t.glu(b, "_shexp", E, FE * S, out_std);
    }
    t.head(a, E, n_vocab);
    return t.list;
}

}  // namespace

int verb_gen_model(int argc, char** argv) {
    Args a(argc, argv,
           {"--arch", "--layers", "--embd", "--heads", "--kv-heads", "--head-dim", "--experts", "--used",
            "--ff-exp", "--ff", "--vocab", "--ctx", "--type", "--out", "--seed", "--tokenizer", "--embd-std",
            "--out-std", "--rope-base", "--like", "--ff-shexp", "--ssm-k-heads", "--ssm-v-heads", "--ssm-head-dim",
            "--conv-kernel", "--full-every", "--rope-dims", "--v-head-dim", "--q-lora", "--kv-lora", "--shared",
            "--dense-lead", "--groups", "--groups-used", "--gating", "--expert-scale"},
           {"--tied", "--dry-run"});
    const std::string arch = a.str("--arch", "qwen3moe");
    if (arch != "qwen3moe" && arch != "qwen3" && arch != "qwen35moe" && arch != "deepseek2")
        throw Error("--arch '" + arch + "': gen-model writes qwen3moe, qwen3, qwen35moe or deepseek2");
    const bool q35 = arch == "qwen35moe", ds2 = arch == "deepseek2";
    const bool moe = arch != "qwen3";
    const std::map<std::string, int64_t>* preset = nullptr;
    if (a.has("--like")) {
        if (a.str("--like") == "qwen3.5-397b" && q35) preset = &kQwen35_397b;
        else if (a.str("--like") == "deepseek-v3" && ds2) preset = &kDeepseekV3;
        else
            throw Error("--like '" + a.str("--like") + "': the presets are qwen3.5-397b (with --arch qwen35moe) and "
                        "deepseek-v3 (with --arch deepseek2)");
    }
    // A shape flag: given on the command line, else the preset's value, else the default.
    auto arg = [&](const char* flag, int64_t def) {
        if (preset && !a.has(flag))
            if (auto it = preset->find(flag); it != preset->end()) return it->second;
        return a.i64(flag, def);
    };
    const std::string type_s = a.str("--type", "q4_K");
    const auto type = type_from_name(type_s);
    if (!type || !type_info(*type).has_kernels) throw Error("--type '" + type_s + "' is not a type sluice can write");
    const std::string out = a.required("--out");

    const text::Vocab vocab = a.has("--tokenizer") ? text::from_hf_json(a.str("--tokenizer"))
                                                   : text::byte_vocab(arg("--vocab", 1024));
    const int64_t n_vocab = int64_t(vocab.tokens.size());
    const Ds2Shape d = ds2 ? ds2_shape(arg, a) : Ds2Shape{};
    const std::vector<TensorSpec> specs = q35   ? qwen35_tensors(arg, a, n_vocab, *type)
                                          : ds2 ? deepseek2_tensors(arg, a, d, n_vocab, *type)
                                                : qwen3_tensors(a, moe, n_vocab, *type);

    const int64_t L = arg("--layers", 4), E = arg("--embd", 256), H = arg("--heads", 4);
    const int64_t Hkv = ds2 ? 1 : arg("--kv-heads", 2);  // MLA: one latent for every head
    const int64_t D = ds2 ? d.dk : arg("--head-dim", E / H), X = arg("--experts", 8), K = arg("--used", 2);
    if (L < 1 || E < 1 || H < 1 || Hkv < 1 || H % Hkv != 0)
        throw Error("gen-model: layers, embd, heads must be >= 1 and heads a multiple of kv-heads");
    if (ds2 && (d.rope < 2 || d.rope % 2 || D <= d.rope || d.kv_lora < 1 || d.dv < 1 || d.lead < 0 || d.q_lora < 0 ||
                d.shared < 0 || d.groups < 1 || X % d.groups != 0 || d.groups_used < 1 || d.groups_used > d.groups))
        throw Error("gen-model deepseek2: need an even --rope-dims below --head-dim, --kv-lora and --v-head-dim >= 1, "
                    "--groups dividing --experts, 1 <= --groups-used <= --groups");
    // llama.cpp takes 26- and 27-layer deepseek2 files for V2-Lite, which has no q bottleneck
    if (ds2 && (L == 26 || L == 27) && d.q_lora > 0)
        throw Error("gen-model deepseek2: llama.cpp reads 26 or 27 layers as V2-Lite (no --q-lora); pick another count");
    if (moe && (X < 1 || K < 1 || K > X)) throw Error("gen-model: need 1 <= --used <= --experts");
    if (q35 && (arg("--ssm-k-heads", 2) < 1 || arg("--ssm-v-heads", 4) % arg("--ssm-k-heads", 2) != 0 ||
                arg("--full-every", 4) < 1 || arg("--conv-kernel", 4) < 1))
        throw Error("gen-model: --ssm-v-heads must be a multiple of --ssm-k-heads >= 1; --full-every, --conv-kernel >= 1");

    gguf::Writer w(out);
    w.set_str("general.architecture", arch);
    w.set_str("general.name", "sluice gen-model " + arch + (preset ? " like " + a.str("--like") : ""));
    w.set_u32("general.file_type", file_type_of(*type));
    const std::string p = arch + ".";
    w.set_u32(p + "context_length", uint32_t(arg("--ctx", 4096)));
    w.set_u32(p + "embedding_length", uint32_t(E));
    w.set_u32(p + "block_count", uint32_t(L));
    if (!q35) w.set_u32(p + "feed_forward_length", uint32_t(arg("--ff", 4 * E)));
    w.set_u32(p + "attention.head_count", uint32_t(H));
    w.set_u32(p + "attention.head_count_kv", uint32_t(Hkv));
    if (ds2) {  // the absorbed form's widths, then the per-head ones under *_mla (the converter's keys)
        w.set_u32(p + "attention.key_length", uint32_t(d.kv_lora + d.rope));
        w.set_u32(p + "attention.value_length", uint32_t(d.kv_lora));
        w.set_u32(p + "attention.key_length_mla", uint32_t(d.dk));
        w.set_u32(p + "attention.value_length_mla", uint32_t(d.dv));
        w.set_u32(p + "attention.q_lora_rank", uint32_t(d.q_lora));
        w.set_u32(p + "attention.kv_lora_rank", uint32_t(d.kv_lora));
        w.set_u32(p + "rope.dimension_count", uint32_t(d.rope));
        w.set_u32(p + "leading_dense_block_count", uint32_t(d.lead));
        w.set_u32(p + "expert_shared_count", uint32_t(d.shared));
        w.set_u32(p + "expert_group_count", uint32_t(d.groups));
        w.set_u32(p + "expert_group_used_count", uint32_t(d.groups_used));
        w.set_u32(p + "expert_gating_func", d.sigmoid ? 2u : 1u);
        w.set_f32(p + "expert_weights_scale", float(a.f64("--expert-scale", d.sigmoid ? 2.5 : 1.0)));
        w.set_bool(p + "expert_weights_norm", d.sigmoid);
    } else {
        w.set_u32(p + "attention.key_length", uint32_t(D));
        w.set_u32(p + "attention.value_length", uint32_t(D));
    }
    w.set_f32(p + "rope.freq_base", float(a.f64("--rope-base", q35 ? 10000000.0 : ds2 ? 10000.0 : 1000000.0)));
    w.set_f32(p + "attention.layer_norm_rms_epsilon", 1e-6f);
    if (moe) {
        w.set_u32(p + "expert_count", uint32_t(X));
        w.set_u32(p + "expert_used_count", uint32_t(K));
        w.set_u32(p + "expert_feed_forward_length", uint32_t(arg("--ff-exp", 128)));
    }
    if (q35) {  // the keys llama.cpp's converter writes for Qwen3.5 (partial RoPE: a quarter of the head)
        const int64_t nv = arg("--ssm-v-heads", 4), ds = arg("--ssm-head-dim", 32);
        w.set_u32(p + "expert_shared_feed_forward_length", uint32_t(arg("--ff-shexp", arg("--ff-exp", 128))));
        w.set_u32(p + "ssm.conv_kernel", uint32_t(arg("--conv-kernel", 4)));
        w.set_u32(p + "ssm.state_size", uint32_t(ds));
        w.set_u32(p + "ssm.group_count", uint32_t(arg("--ssm-k-heads", 2)));
        w.set_u32(p + "ssm.time_step_rank", uint32_t(nv));
        w.set_u32(p + "ssm.inner_size", uint32_t(nv * ds));
        w.set_u32(p + "full_attention_interval", uint32_t(arg("--full-every", 4)));
        w.set_u32(p + "rope.dimension_count", uint32_t(arg("--rope-dims", D / 4)));
        w.set_i32_array(p + "rope.dimension_sections", {11, 11, 10, 0});
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
        // Header only: the data is a hole, so the file has its full size on no disk, and what a token
        // reads comes from the same code `sluice info` runs.
        w.finish_header_only();
        auto f = gguf::File::open(out);
        const ModelInfo mi = model_info(*f);
        std::printf("%s: %zu tensors, %s of weights (header only: a sparse file, data not written)\n", out.c_str(),
                    specs.size(), format_bytes(total).c_str());
        std::printf("dense weights %s; experts %s in %lld layers x %lld (%s per expert slab)\n",
                    format_bytes(mi.dense_bytes).c_str(), format_bytes(mi.expert_bytes).c_str(),
                    (long long)mi.n_moe_layers, (long long)mi.n_expert, format_bytes(mi.expert_slab_bytes).c_str());
        std::printf("per token     experts %s (%lld used per layer) + dense %s\n",
                    format_bytes(mi.expert_bytes_per_token).c_str(), (long long)mi.n_expert_used,
                    format_bytes(mi.dense_bytes_per_token).c_str());
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
                if (t.std == 0.0f) std::fill(frow.begin(), frow.end(), t.fill);  // norms, ssm_a
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
