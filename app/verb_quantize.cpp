// sluice quantize IN.gguf OUT.gguf --type T: weight matrices rewritten as T, norms and router F32.
#include <cstdio>

#include "app/args.h"
#include "app/verbs.h"
#include "engine/demo_model.h"
#include "engine/error.h"
#include "engine/gguf/requantize.h"
#include "engine/tensor/kernels.h"

namespace sluice {

int verb_quantize(int argc, char** argv) {
    Args a(argc, argv, {"--type"});
    if (a.positional().size() != 2) throw Error("usage: sluice quantize IN.gguf OUT.gguf --type T");
    const std::string type_s = a.required("--type");
    const auto want = type_from_name(type_s);
    if (!want || !type_info(*want).has_kernels)
        throw Error("--type '" + type_s + "' is not a type sluice can write (f32 f16 bf16 q8_0 q4_0 q5_0 q5_1 q2_K q3_K "
                    "q4_K q5_K q6_K iq4_nl iq4_xs iq2_xxs iq2_xs iq2_s iq3_xxs iq3_s iq1_s iq1_m)");
    const int fb = requantize_file(resolve_model_path(a.positional()[0]), a.positional()[1], *want,
                                   [](const std::string& s) { std::fprintf(stderr, "  %s\n", s.c_str()); });
    std::fprintf(stderr, "wrote %s (%s, %d tensors fell back)\n", a.positional()[1].c_str(), type_name(*want), fb);
    return 0;
}

}  // namespace sluice
