// Shared by the qwen35moe tests (test_qwen35_ref.cpp, test_gpu_qwen35.cpp).
#pragma once
#include <cstring>
#include <string>
#include <vector>

#include "engine/gguf/gguf.h"

namespace sluice::reftest {

// A fixture rewritten as llama.cpp's converter writes it with --fuse-qkv --fuse-gate-up-exps: the full
// layers' attn_q/k/v as one attn_qkv (rows q, k, v) and each expert's gate and up rows as one slab of
// ffn_gate_up_exps. Same weights, same per-row dot products: the logits are identical.
inline std::string fused_copy(const std::string& in, const std::string& out) {
    auto f = gguf::File::open(in);
    gguf::Writer w(out);
    for (const auto& [k, v] : f->metadata())
        if (k != "general.alignment") w.set(k, v);
    auto ends = [](const std::string& n, const char* suffix) {
        return n.size() >= std::strlen(suffix) && n.compare(n.size() - std::strlen(suffix), std::string::npos, suffix) == 0;
    };
    auto sibling = [&](const std::string& n, const char* from, const char* to) {
        return f->find_tensor(n.substr(0, n.size() - std::strlen(from)) + to);
    };
    // Each output tensor: name, type, shape, and the byte ranges it is made of.
    struct Part { const uint8_t* p; size_t n; };
    std::vector<std::vector<Part>> parts;
    for (const gguf::TensorInfo& t : f->tensors()) {
        std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
        std::string name = t.name;
        std::vector<Part> bytes{{f->data(t), size_t(t.nbytes)}};
        if (ends(name, "attn_k.weight") || ends(name, "attn_v.weight") || ends(name, "ffn_up_exps.weight")) continue;
        if (ends(name, "attn_q.weight")) {
            const gguf::TensorInfo* k = sibling(name, "attn_q.weight", "attn_k.weight");
            const gguf::TensorInfo* v = sibling(name, "attn_q.weight", "attn_v.weight");
            name = name.substr(0, name.size() - 13) + "attn_qkv.weight";
            ne[1] = t.ne[1] + k->ne[1] + v->ne[1];
            bytes = {{f->data(t), size_t(t.nbytes)}, {f->data(*k), size_t(k->nbytes)}, {f->data(*v), size_t(v->nbytes)}};
        } else if (ends(name, "ffn_gate_exps.weight")) {
            const gguf::TensorInfo* up = sibling(name, "ffn_gate_exps.weight", "ffn_up_exps.weight");
            name = name.substr(0, name.size() - 20) + "ffn_gate_up_exps.weight";
            ne[1] = 2 * t.ne[1];
            bytes.clear();
            const size_t slab = size_t(t.nbytes / uint64_t(t.ne[2]));
            for (int64_t e = 0; e < t.ne[2]; ++e)
                bytes.insert(bytes.end(), {{f->data(t) + e * slab, slab}, {f->data(*up) + e * slab, slab}});
        }
        w.add_tensor(name, t.type, ne);
        parts.push_back(bytes);
    }
    w.begin_data();
    for (const auto& ps : parts)
        for (const Part& p : ps) w.write_data(p.p, p.n);
    w.finish();
    return out;
}

}  // namespace sluice::reftest
