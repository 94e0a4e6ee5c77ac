// sluice chat [MODEL.gguf]: the terminal chat (ui/app.h). Conversations, settings and prefill snapshots
// live in the history database ($XDG_DATA_HOME/sluice/history.db, or --db PATH; --no-history keeps
// them in this process only). Without a model argument it opens the model used last, else the demo
// model (models/demo.gguf).
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "app/args.h"
#include "app/verbs.h"
#include "engine/demo_model.h"
#include "engine/error.h"
#include "ui/app.h"
#include "history/store.h"
#include "ui/conversation_store.h"
#include "ui/sqlite_store.h"

namespace sluice {

int verb_chat(int argc, char** argv) {
    Args a(argc, argv,
           with_gpu_flags({"-t", "-c", "-n", "--temp", "--seed", "--top-k", "--top-p", "--min-p", "--repeat-penalty",
                           "--experts-per-token", "--system", "--template", "--token-delay-ms", "--db"}),
           {"--no-think", "--no-history"});
    if (a.positional().size() > 1)
        throw Error("usage: sluice chat [MODEL.gguf] [--db PATH | --no-history] [-c CTX] [-n MAX_REPLY] [--temp T] ...");
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
    s.model.n_threads = int(a.i64("-t", 0));
    s.model.n_ctx = a.i64("-c", 0);
    s.model.experts_per_token = a.i64("--experts-per-token", 0);
    apply_gpu_flags(a, s.model);
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
