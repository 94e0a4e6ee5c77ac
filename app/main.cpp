// sluice: terminal chat for MoE models larger than RAM. main() only dispatches to a verb.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "app/verbs.h"
#include "engine/error.h"

namespace {

struct Verb {
    const char* name;
    int (*fn)(int argc, char** argv);
    const char* help;
};

const Verb kVerbs[] = {
#ifdef SLUICE_UI
    {"chat", sluice::verb_chat, "[MODEL.gguf] [--db PATH | --no-history] [-c CTX] [-n MAX_REPLY] [--temp T] [--system TEXT]: the terminal chat"},
#endif
    {"run", sluice::verb_run, "MODEL.gguf -p TEXT [-n N] [--temp T] [--seed S] [-t THREADS] [--io MODE] [--memory SIZE] [--gpu auto|none|INDEX]"},
    {"logits", sluice::verb_logits, "MODEL.gguf --tokens 1,2,3 --out FILE [--gpu auto|none|INDEX]"},
    {"gpus", sluice::verb_gpus, "[--json]: the Vulkan devices --gpu can use"},
    {"tokenize", sluice::verb_tokenize, "MODEL.gguf --text TEXT (or text on stdin)"},
    {"info", sluice::verb_info, "MODEL.gguf [--json]"},
    {"gen-model", sluice::verb_gen_model, "--arch qwen3moe|qwen35moe [--layers N ... | --like qwen3.5-397b] [--dry-run] --type T --out F"},
    {"quantize", sluice::verb_quantize, "IN.gguf OUT.gguf --type T"},
    {"bench", sluice::verb_bench, "MODEL.gguf [--io MODE] [--memory SIZE] [--experts-per-token K] [-n N] [--json]"},
#ifdef SLUICE_UI
    {"history", sluice::verb_history, "list|show ID|export ID --format md|json|delete ID|search TEXT [--db PATH]"},
#endif
};

void usage() {
    std::fprintf(stderr, "usage: sluice VERB [ARGS]\n");
    for (const Verb& v : kVerbs) std::fprintf(stderr, "  sluice %-9s %s\n", v.name, v.help);
    std::fprintf(stderr, "MODEL.gguf may be 'demo': the small model that ships with sluice (models/demo.gguf)\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    for (const Verb& v : kVerbs) {
        if (std::strcmp(argv[1], v.name) != 0) continue;
        try {
            return v.fn(argc - 2, argv + 2);
        } catch (const sluice::Error& e) {
            std::fprintf(stderr, "sluice %s: %s\n", v.name, e.what());
            return 1;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "sluice %s: internal error: %s\n", v.name, e.what());
            return 3;
        }
    }
    std::fprintf(stderr, "sluice: unknown verb '%s'\n", argv[1]);
    usage();
    return 2;
}
