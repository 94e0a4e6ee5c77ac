// sluice info MODEL.gguf [--json] [--experts-per-token K]: what the file holds and what a token costs.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/args.h"
#include "app/verbs.h"
#include "engine/demo_model.h"
#include "engine/error.h"
#include "engine/model_info.h"

namespace sluice {

int verb_info(int argc, char** argv) {
    Args a(argc, argv, {"--experts-per-token"}, {"--json"});
    if (a.positional().size() != 1) throw Error("usage: sluice info MODEL.gguf [--json]");
    auto f = gguf::File::open(resolve_model_path(a.positional()[0]));
    const ModelInfo mi = model_info(*f, a.i64("--experts-per-token", 0));

    if (a.has("--json")) {
        nlohmann::ordered_json j;
        j["file"] = f->path();
        j["file_bytes"] = f->file_size();
        j["gguf_version"] = f->version();
        j["architecture"] = mi.arch;
        j["name"] = mi.name;
        for (const auto& [k, v] : mi.hparams) j["hparams"][k] = v;
        j["n_tensors"] = f->tensors().size();
        j["n_params"] = mi.n_params;
        for (const auto& [t, cb] : mi.types) j["tensor_types"][t] = {{"tensors", cb.first}, {"bytes", cb.second}};
        j["dense_bytes"] = mi.dense_bytes;
        j["expert_bytes"] = mi.expert_bytes;
        j["n_expert"] = mi.n_expert;
        j["n_expert_used"] = mi.n_expert_used;
        j["moe_layers"] = mi.n_moe_layers;
        j["expert_slab_bytes"] = mi.expert_slab_bytes;
        j["expert_bytes_per_token"] = mi.expert_bytes_per_token;
        j["dense_bytes_per_token"] = mi.dense_bytes_per_token;
        std::printf("%s\n", j.dump(1).c_str());
        return 0;
    }
    std::printf("file          %s (%s, GGUF v%u)\n", f->path().c_str(), format_bytes(f->file_size()).c_str(), f->version());
    std::printf("architecture  %s%s%s\n", mi.arch.c_str(), mi.name.empty() ? "" : "  name: ", mi.name.c_str());
    for (const auto& [k, v] : mi.hparams) std::printf("  %-34s %s\n", k.c_str(), v.c_str());
    std::printf("parameters    %.3f B in %zu tensors\n", double(mi.n_params) / 1e9, f->tensors().size());
    for (const auto& [t, cb] : mi.types)
        std::printf("  %-8s %5lld tensors  %s\n", t.c_str(), (long long)cb.first, format_bytes(cb.second).c_str());
    std::printf("dense weights %s (resident)\n", format_bytes(mi.dense_bytes).c_str());
    std::printf("expert weights %s in %lld MoE layers x %lld experts (%s per expert slab)\n",
                format_bytes(mi.expert_bytes).c_str(), (long long)mi.n_moe_layers, (long long)mi.n_expert,
                format_bytes(mi.expert_slab_bytes).c_str());
    std::printf("per token     experts %s (%lld used per layer) + dense %s\n",
                format_bytes(mi.expert_bytes_per_token).c_str(), (long long)mi.n_expert_used,
                format_bytes(mi.dense_bytes_per_token).c_str());
    return 0;
}

}  // namespace sluice
