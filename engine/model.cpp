#include "engine/model.h"

#include <thread>

#include "engine/error.h"
#include "engine/stats_recorder.h"
#include "engine/stream/context.h"

namespace sluice {

namespace {

using Loader = std::unique_ptr<Model> (*)(std::unique_ptr<gguf::File>, const ModelOptions&);
struct Arch {
    const char* name;
    Loader load;
    Loader load_gpu = nullptr;  // GPU backend, where there is one
};
// Adding an architecture: one file under engine/models/ and one row here.
const Arch kArchs[] = {
    {"qwen3moe", load_qwen3moe, load_qwen3moe_gpu},
    {"qwen3", load_qwen3moe, load_qwen3moe_gpu},  // dense Qwen3 shares the file: attention identical, FFN dense
    {"qwen35moe", load_qwen35moe, load_qwen35moe_gpu},
    {"qwen3next", load_qwen35moe, load_qwen35moe_gpu},  // Qwen3-Next shares the file: fused ssm_ba, grouped value heads
    {"deepseek2", load_deepseek2, load_deepseek2_gpu},  // DeepSeek-V2/V3, Kimi K2/K2.5: MLA + sigmoid-routed MoE
};

}  // namespace

std::vector<std::string> supported_architectures() {
    std::vector<std::string> out;
    for (const Arch& a : kArchs) out.push_back(a.name);
    return out;
}

std::unique_ptr<Model> load_model(const std::string& path, const ModelOptions& opt) {
    if (!opt.gpu.empty() && opt.gpu != "none" && opt.gpu != "auto" &&
        opt.gpu.find_first_not_of("0123456789") != std::string::npos)
        throw Error("--gpu expects auto, none or a device index, got '" + opt.gpu + "'");
    ModelOptions o = opt;
    auto file = open_model_file(path, o);  // sets o.stream: I/O mode, dense weights resident
    const std::string arch = file->get_string("general.architecture");
    for (const Arch& a : kArchs) {
        if (arch != a.name) continue;
        const bool want_gpu = !o.gpu.empty() && o.gpu != "none";
        // A GPU was asked for: any reason it cannot be used becomes the placement note, and the CPU
        // forward runs instead.
        std::string why;
        if (want_gpu && !a.load_gpu) why = "no GPU backend for '" + arch + "' yet";
        if (want_gpu && a.load_gpu) {
            try {
                std::unique_ptr<Model> m = a.load_gpu(std::move(file), o);
                finish_load(*m, o);
                return m;
            } catch (const Error& e) {
                why = e.what();
            }
            o = opt;
            file = open_model_file(path, o);  // a fresh stream context: nothing of the GPU try is kept
        }
        std::unique_ptr<Model> m = a.load(std::move(file), o);
        finish_load(*m, o);
        if (want_gpu) m->set_placement("cpu (GPU not used: " + why + ")");
        return m;
    }
    std::string list;
    for (const Arch& a : kArchs) list += std::string(list.empty() ? "" : ", ") + a.name;
    throw Error(path + ": architecture '" + arch + "' is not supported (supported: " + list + ")");
}

Model::Model(std::unique_ptr<gguf::File> file, const ModelOptions& opt, Hparams hp)
    : stream_(opt.stream), file_(std::move(file)), hp_(std::move(hp)) {
    if (!stream_) {  // an architecture loaded directly, not through load_model: mmap, own statistics
        stream_ = std::make_shared<StreamContext>();
        stream_->rec = std::make_shared<StatsRecorder>(opt.stats ? opt.stats : std::make_shared<StatsBoard>());
    }
    rec_ = stream_->rec.get();
    int n = opt.n_threads > 0 ? opt.n_threads : int(std::thread::hardware_concurrency());
    pool_ = std::make_unique<ThreadPool>(n > 0 ? n : 1);
    if (opt.prefill_chunk < 1) throw Error("--batch must be at least 1, got " + std::to_string(opt.prefill_chunk));
    chunk_ = opt.prefill_chunk;
    n_ctx_ = opt.n_ctx > 0 ? opt.n_ctx : std::min<int64_t>(hp_.n_ctx_train > 0 ? hp_.n_ctx_train : 4096, 4096);
}

void Model::check_token(int32_t token) const {
    if (token < 0 || token >= hp_.n_vocab)
        throw Error("token id " + std::to_string(token) + " is out of range (vocabulary has " +
                    std::to_string(hp_.n_vocab) + " tokens)");
    if (n_past_ >= n_ctx_)
        throw Error("context is full (" + std::to_string(n_ctx_) + " tokens); start a new conversation or raise -c");
}

void Model::truncate(int64_t n) {
    if (n < 0 || n > n_past_)
        throw Error("cannot truncate to " + std::to_string(n) + " tokens: only " + std::to_string(n_past_) + " are cached");
    n_past_ = n;
}

std::shared_ptr<StatsBoard> Model::stats() const { return rec_->board(); }
const MemoryReport& Model::memory() const { return stream_->mem; }

Model::TokenScope::TokenScope(Model& m) : m_(m) { m_.rec_->begin_token(); }
Model::TokenScope::~TokenScope() { m_.rec_->end_token(m_.n_past_, m_.n_ctx_); }

std::vector<float> Model::forward_tokens(std::span<const int32_t> tokens, bool all) {
    const size_t nv = size_t(hp_.n_vocab);
    std::vector<float> out(all ? tokens.size() * nv : nv);
    if (tokens.empty()) return {};
    for (int32_t t : tokens) check_token(t);
    if (n_past_ + int64_t(tokens.size()) > n_ctx_)
        throw Error("the prompt needs " + std::to_string(n_past_ + int64_t(tokens.size())) + " positions; the context holds " +
                    std::to_string(n_ctx_) + "; start a new conversation or raise -c");
    struct PromptDone {  // the prompt phase ends however the loop does
        StatsRecorder* r;
        ~PromptDone() { r->set_prompt(0, 0); }
    } done{rec_};
    prompt_total_ = int64_t(tokens.size());
    for (size_t i = 0; i < tokens.size();) {
        const size_t n = std::min(tokens.size() - i, size_t(chunk_));
        prompt_done_ = double(i);
        chunk_n_ = int64_t(n);
        rec_->set_prompt(int64_t(i), prompt_total_, int64_t(n));
        if (hooks_.stop && hooks_.stop->load(std::memory_order_relaxed)) throw Interrupted();
        float* dst = all ? out.data() + i * nv : out.data();
        if (n == 1) {
            const float* l = forward(tokens[i]);
            std::copy(l, l + nv, dst);
        } else {
            TokenScope scope(*this);  // one statistics entry per chunk
            forward_batch(tokens.subspan(i, n), all, dst);
        }
        i += n;
        if (hooks_.progress) hooks_.progress(double(i), prompt_total_);
    }
    return out;
}

void Model::forward_batch(std::span<const int32_t> tokens, bool all, float* logits) {
    const size_t nv = size_t(hp_.n_vocab);
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (i > 0) check_stop();
        const float* l = forward(tokens[i]);
        if (all || i + 1 == tokens.size()) std::copy(l, l + nv, all ? logits + i * nv : logits);
        token_done(i);
    }
}

void Model::token_done(size_t i) {
    if (hooks_.progress) hooks_.progress(prompt_done_ + double(i + 1), prompt_total_);
}

void Model::chunk_progress(double done) {
    if (hooks_.progress) hooks_.progress(prompt_done_ + done, prompt_total_);
    check_stop();
}

void Model::check_stop() const {
    if (hooks_.stop && hooks_.stop->load(std::memory_order_relaxed)) throw Interrupted();
}

void Model::layer_done(int64_t layer) {
    if (hooks_.progress)
        hooks_.progress(prompt_done_ + double(chunk_n_) * double(layer + 1) / double(hp_.n_layer), prompt_total_);
    if (hooks_.stop && hooks_.stop->load(std::memory_order_relaxed)) throw Interrupted();
}

}  // namespace sluice
