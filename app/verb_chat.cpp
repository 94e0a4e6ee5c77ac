// sluice chat [MODEL.gguf]: the terminal chat (ui/app.h). Conversations, settings and prefill snapshots
// live in the history database ($XDG_DATA_HOME/sluice/history.db, or --db PATH; --no-history keeps
// them in this process only). Without a model argument it opens the model used last, else the demo
// model (models/demo.gguf).
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "app/args.h"
#include "app/model_flags.h"
#include "app/verbs.h"
#include "engine/demo_model.h"
#include "engine/error.h"
#include "engine/gguf/gguf.h"
#include "engine/moe.h"
#include "ui/app.h"
#include "history/store.h"
#include "ui/conversation_store.h"
#include "ui/sqlite_store.h"

namespace sluice {

namespace {

// Bytes of a file's routed experts (3-D *_exps tensors), from the header alone.
uint64_t routed_expert_bytes(const std::string& path) {
    auto f = gguf::File::open(path, {.map = false});
    uint64_t n = 0;
    for (const gguf::TensorInfo& t : f->tensors())
        if (is_routed_expert(t)) n += t.nbytes;
    return n;
}

// Experts up to this size are "small": the chat streams them (below) instead of mapping the file.
constexpr uint64_t kSmallExperts = 256ull << 20;

}  // namespace

int verb_chat(int argc, char** argv) {
    std::set<std::string> flags = {"-n", "--temp", "--seed", "--top-k", "--top-p", "--min-p", "--repeat-penalty",
                                   "--system", "--template", "--token-delay-ms", "--db"};
    flags.insert(kModelFlags.begin(), kModelFlags.end());
    std::set<std::string> bools = {"--no-think", "--no-history"};
    bools.insert(kModelBoolFlags.begin(), kModelBoolFlags.end());
    Args a(argc, argv, flags, bools);
    if (a.positional().size() > 1)
        throw Error(std::string("usage: sluice chat [MODEL.gguf] [--db PATH | --no-history] [-n MAX_REPLY] [--temp T] ... ") +
                    kModelFlagsHelp);
    ModelOptions mo = model_options(a);  // before anything opens: a bad flag fails here
    if (a.has("--db") && a.has("--no-history")) throw Error("--db and --no-history exclude each other");

    std::unique_ptr<ui::ConversationStore> store;
    if (a.has("--no-history")) {
        store = ui::make_memory_store();
    } else {
        const std::string db = a.has("--db") ? a.str("--db") : history::Store::default_path();
        try {
            store = ui::make_sqlite_store(db);
        } catch (const Error& e) {
            throw Error(std::string(e.what()) + "\n  (sluice chat --no-history chats without saving anything)");
        }
    }

    // No argument: the model used last, else the demo model that ships with sluice.
    std::string model = a.positional().empty() ? store->setting("last_model").value_or("") : a.positional()[0];
    if (model.empty()) {
        try {
            model = demo_model_path();
        } catch (const Error& e) {
            std::fprintf(stderr,
                         "sluice chat: no model given, none used before, and the demo model is missing (%s).\n"
                         "  Chat with a GGUF file:      sluice chat MODEL.gguf\n"
                         "  Or make a tiny test model:  sluice gen-model --arch qwen3moe --out tiny.gguf\n",
                         e.what());
            return 2;
        }
    }
    model = resolve_model_path(model);
    if (!std::filesystem::exists(model)) throw Error(model + ": no such file");
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        throw Error("chat needs a terminal (for scripts, use: sluice run MODEL.gguf --chat -p TEXT)");

    ui::ChatAppOptions o;
    o.store = store.get();
    ChatSessionOptions& s = o.session;
    s.model_path = model;
    // The same model options as run and bench; /experts K reloads with these too.
    s.model = mo;
    // --io auto maps a file that fits in memory (engine/stream/setup.cpp), and a mapped model reads
    // nothing sluice can count, so the chat's cache and disk gauges would stay empty on the demo and
    // on every small test model. The chat is where people watch those gauges, so for small experts
    // (the demo: a few MB) it streams them with --io direct and an own cache of half the experts:
    // the cache has to miss for the disk gauge to move, and at these sizes the speed difference from
    // mmap is invisible. Larger models keep auto's measured choice; --io mmap still maps.
    if (s.model.io == IoMode::Auto && !a.has("--memory") && !a.has("--expert-cache")) {
        const uint64_t experts = routed_expert_bytes(model);
        if (experts > 0 && experts <= kSmallExperts) {
            s.model.io = IoMode::Direct;
            s.model.expert_cache = experts / 2;
        }
    }
    s.max_reply_tokens = a.i64("-n", 0);
    s.template_name = a.str("--template");
    if (a.has("--no-think")) s.enable_thinking = false;
    s.token_delay_ms = int(a.i64("--token-delay-ms", 0));
    s.sampler.temperature = float(a.f64("--temp", s.sampler.temperature));
    s.sampler.seed = uint64_t(a.i64("--seed", 42));
    s.sampler.top_k = int32_t(a.i64("--top-k", s.sampler.top_k));
    s.sampler.top_p = float(a.f64("--top-p", s.sampler.top_p));
    s.sampler.min_p = float(a.f64("--min-p", s.sampler.min_p));
    s.sampler.repeat_penalty = float(a.f64("--repeat-penalty", s.sampler.repeat_penalty));
    s.snapshots = store->snapshot_store();
    o.system_prompt = a.str("--system");
    o.input_history = ui::data_dir() + "/input_history";
    return ui::run_chat_app(o);
}

}  // namespace sluice
