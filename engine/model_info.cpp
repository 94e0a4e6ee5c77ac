#include "engine/model_info.h"

#include <cstdio>
#include <set>

namespace sluice {

namespace {

std::string value_string(const gguf::Value& v) {
    char buf[64];
    switch (v.v.index()) {
        case 0: return std::to_string(std::get<uint64_t>(v.v));
        case 1: return std::to_string(std::get<int64_t>(v.v));
        case 2: std::snprintf(buf, sizeof buf, "%g", std::get<double>(v.v)); return buf;
        case 3: return std::get<bool>(v.v) ? "true" : "false";
        case 4: return std::get<std::string>(v.v);
        default: {
            const gguf::Array& a = std::get<gguf::Array>(v.v);
            if (a.items.size() > 16) return "[" + std::to_string(a.items.size()) + " items]";
            std::string s = "[";
            for (size_t i = 0; i < a.items.size(); ++i) s += (i ? ", " : "") + value_string(a.items[i]);
            return s + "]";
        }
    }
}

}  // namespace

std::string format_bytes(uint64_t b) {
    char buf[32];
    if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / (1ull << 30));
    else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", double(b) / (1ull << 20));
    else if (b >= 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024);
    else std::snprintf(buf, sizeof buf, "%llu B", (unsigned long long)b);
    return buf;
}

ModelInfo model_info(const gguf::File& f, int64_t experts_used) {
    ModelInfo mi;
    mi.arch = f.get_string_or("general.architecture", "?");
    mi.name = f.get_string_or("general.name", "");
    const std::string p = mi.arch + ".";
    for (const auto& [k, v] : f.metadata())
        if (k.rfind(p, 0) == 0) mi.hparams.emplace_back(k.substr(p.size()), value_string(v));
    mi.n_expert = int64_t(f.get_uint_or(p + "expert_count", 0));
    mi.n_expert_used = experts_used > 0 ? experts_used : int64_t(f.get_uint_or(p + "expert_used_count", 0));

    std::set<std::string> moe_layers;
    uint64_t embd_row = 0;
    bool has_output = false;
    for (const gguf::TensorInfo& t : f.tensors()) {
        auto& [count, bytes] = mi.types[type_name(t.type)];
        ++count;
        bytes += t.nbytes;
        mi.n_params += t.n_elements();
        if (t.name.find("_exps") != std::string::npos) {
            mi.expert_bytes += t.nbytes;
            moe_layers.insert(t.name.substr(0, t.name.find('.', 4)));  // "blk.N"
        } else {
            mi.dense_bytes += t.nbytes;
        }
        if (t.name == "token_embd.weight") embd_row = t.ne[1] ? t.nbytes / uint64_t(t.ne[1]) : 0;
        if (t.name == "output.weight") has_output = true;
    }
    mi.n_moe_layers = int64_t(moe_layers.size());
    if (mi.n_expert > 0 && mi.n_moe_layers > 0)
        mi.expert_slab_bytes = mi.expert_bytes / uint64_t(mi.n_moe_layers * mi.n_expert);
    mi.expert_bytes_per_token = uint64_t(mi.n_moe_layers * mi.n_expert_used) * mi.expert_slab_bytes;
    // Decode reads every dense matrix once, but only one row of the embedding table (unless the
    // table is also the tied output head).
    const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
    mi.dense_bytes_per_token = mi.dense_bytes;
    if (embd && has_output) mi.dense_bytes_per_token -= embd->nbytes - embd_row;
    return mi;
}

}  // namespace sluice
