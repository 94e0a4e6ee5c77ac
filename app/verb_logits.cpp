// sluice logits MODEL.gguf --tokens 1,2,3 --out FILE: float32 logits for every position,
// n_tokens x n_vocab, row-major, little-endian (for comparisons with PyTorch and llama.cpp).
#include <cstdio>
#include <string>
#include <vector>

#include "app/args.h"
#include "app/verbs.h"
#include "engine/demo_model.h"
#include "engine/error.h"
#include "engine/model.h"

namespace sluice {

std::vector<int32_t> parse_token_list(const std::string& s) {
    std::vector<int32_t> out;
    size_t i = 0;
    while (i < s.size()) {
        size_t j = s.find_first_of(", ", i);
        if (j == std::string::npos) j = s.size();
        if (j > i) {
            const std::string t = s.substr(i, j - i);
            char* end = nullptr;
            long v = std::strtol(t.c_str(), &end, 10);
            if (*end || v < 0 || v > INT32_MAX) throw Error("--tokens: '" + t + "' is not a token id");
            out.push_back(int32_t(v));
        }
        i = j + 1;
    }
    if (out.empty()) throw Error("--tokens: no token ids given");
    return out;
}

int verb_logits(int argc, char** argv) {
    Args a(argc, argv, with_gpu_flags({"--tokens", "--out", "-t", "-c", "--batch"}));
    if (a.positional().size() != 1) throw Error("usage: sluice logits MODEL.gguf --tokens 1,2,3 --out FILE");
    const std::vector<int32_t> tokens = parse_token_list(a.required("--tokens"));
    ModelOptions opt;
    opt.n_threads = int(a.i64("-t", 0));
    opt.n_ctx = a.i64("-c", int64_t(tokens.size()));
    opt.prefill_chunk = a.i64("--batch", opt.prefill_chunk);
    apply_gpu_flags(a, opt);
    auto model = load_model(resolve_model_path(a.positional()[0]), opt);
    const std::vector<float> logits = model->forward_tokens(tokens, true);
    const std::string out = a.required("--out");
    FILE* f = std::fopen(out.c_str(), "wb");
    if (!f) throw Error("cannot write '" + out + "'");
    const size_t n = std::fwrite(logits.data(), sizeof(float), logits.size(), f);
    if (std::fclose(f) != 0 || n != logits.size()) throw Error("error writing '" + out + "'");
    std::fprintf(stderr, "placement: %s\n", model->placement().c_str());
    std::fprintf(stderr, "wrote %zu x %lld logits to %s\n", tokens.size(), (long long)model->hparams().n_vocab,
                 out.c_str());
    return 0;
}

}  // namespace sluice
