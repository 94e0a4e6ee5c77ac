// sluice run MODEL.gguf -p TEXT [-n N] [--temp T] [--seed S] [-t THREADS] [--gpu ...]: the continuation on
// stdout as it is generated, placement and timings on stderr. --chat wraps the prompt in the model's chat template.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "app/args.h"
#include "app/model_flags.h"
#include "app/verbs.h"
#include "engine/demo_model.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/stream/context.h"
#include "engine/text/chat_template.h"
#include "engine/text/tokenizer.h"

namespace sluice {

int verb_run(int argc, char** argv) {
    std::set<std::string> flags = {"--prompt", "-n", "--temp", "--seed", "--top-k", "--top-p", "--min-p",
                                   "--repeat-penalty", "--system"};
    flags.insert(kModelFlags.begin(), kModelFlags.end());
    std::set<std::string> bools = {"--chat", "--no-think"};
    bools.insert(kModelBoolFlags.begin(), kModelBoolFlags.end());
    Args a(argc, argv, flags, bools, {{"-p", "--prompt"}});
    if (a.positional().size() != 1)
        throw Error(std::string("usage: sluice run MODEL.gguf -p TEXT [-n N] [--temp T] [--seed S] ") + kModelFlagsHelp);
    const std::string prompt = a.required("--prompt");
    const int64_t n_predict = a.i64("-n", 128);
    if (n_predict < 0) throw Error("-n must be >= 0");

    auto model = load_model(resolve_model_path(a.positional()[0]), model_options(a));
    std::fprintf(stderr, "%s\n", describe(model->memory()).c_str());
    text::Tokenizer tok(text::from_gguf(model->file()));

    std::string text = prompt;
    if (a.has("--chat")) {
        const auto tmpl = text::ChatTemplate::detect(tok.vocab().chat_template);
        if (tmpl.defaulted()) std::fprintf(stderr, "note: the model has no chat template; using ChatML\n");
        std::vector<text::ChatMessage> msgs;
        if (a.has("--system")) msgs.push_back({"system", a.str("--system")});
        msgs.push_back({"user", prompt});
        text::ChatOptions co;
        if (a.has("--no-think")) co.enable_thinking = false;
        text = tmpl.apply(msgs, co);
    }
    std::vector<int32_t> ids = tok.encode(text, true);
    if (ids.empty()) throw Error("the prompt is empty after tokenizing");
    if (int64_t(ids.size()) + n_predict > model->n_ctx())
        throw Error("prompt (" + std::to_string(ids.size()) + " tokens) + -n " + std::to_string(n_predict) +
                    " exceeds the context of " + std::to_string(model->n_ctx()) + " (raise -c)");

    SamplerParams sp;
    sp.temperature = float(a.f64("--temp", 0.8));
    sp.seed = uint64_t(a.i64("--seed", 42));
    sp.top_k = int32_t(a.i64("--top-k", sp.top_k));
    sp.top_p = float(a.f64("--top-p", sp.top_p));
    sp.min_p = float(a.f64("--min-p", sp.min_p));
    sp.repeat_penalty = float(a.f64("--repeat-penalty", sp.repeat_penalty));
    Sampler sampler(sp);
    for (int32_t id : ids) sampler.accept(id);

    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    std::vector<float> logits = model->forward_tokens(ids, false);
    const double prompt_s = std::chrono::duration<double>(Clock::now() - t0).count();

    text::StreamDecoder dec(tok);
    const auto t1 = Clock::now();
    int64_t n_gen = 0;
    const float* l = logits.data();
    std::span<const float> block_max;  // of l once it comes from forward()
    for (; n_gen < n_predict; ++n_gen) {
        const int32_t next = sampler.sample(std::span<const float>(l, size_t(model->hparams().n_vocab)), block_max);
        if (tok.is_control(next) || next == tok.vocab().eos_id || next == tok.vocab().eot_id) break;
        sampler.accept(next);
        const std::string s = dec.push(next);
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fflush(stdout);
        if (n_gen + 1 < n_predict) {
            l = model->forward(next);
            block_max = model->logits_block_max();
        }
    }
    const std::string rest = dec.flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::printf("\n");
    const double gen_s = std::chrono::duration<double>(Clock::now() - t1).count();
    std::fprintf(stderr, "placement: %s\n", model->placement().c_str());
    std::fprintf(stderr, "prompt: %zu tokens in %.2f s (%.2f tok/s)\ndecode: %lld tokens in %.2f s (%.2f tok/s), %d threads, %s kernels\n",
                 ids.size(), prompt_s, double(ids.size()) / prompt_s, (long long)n_gen, gen_s,
                 n_gen > 0 ? double(n_gen) / gen_s : 0.0, model->pool().size(), isa_name(active_isa()));
    return 0;
}

}  // namespace sluice
