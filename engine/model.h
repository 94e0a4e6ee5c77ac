// A loaded model: hyperparameters from GGUF metadata, weights viewed in place (mmap) or, for models
// larger than RAM, dense weights read into RAM and routed experts streamed from the file
// (engine/stream/), a KV cache, and a forward pass per architecture (engine/models/<arch>.cpp). The
// plain CPU forward here is the reference every faster path is tested against.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/gguf/gguf.h"
#include "engine/stats.h"
#include "engine/stream/expert_cache.h"
#include "engine/stream/io.h"
#include "engine/tensor/kernels.h"
#include "engine/tensor/threadpool.h"

namespace sluice {

struct Hparams {
    std::string arch;       // general.architecture
    int64_t n_vocab = 0;
    int64_t n_embd = 0;
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;   // attention.key_length (q and k per head)
    int64_t head_dim_v = 0; // attention.value_length
    int64_t n_rot = 0;      // rope.dimension_count (rotated dims per head)
    int64_t n_ff = 0;       // dense FFN width (0 when every layer is MoE)
    int64_t n_expert = 0;
    int64_t n_expert_used = 0;  // top-k from the file
    int64_t n_ff_exp = 0;   // expert FFN width
    int64_t n_ctx_train = 0;
    float rope_base = 10000.0f;
    float rms_eps = 1e-6f;
};

struct StreamContext;
class StatsRecorder;
struct MemoryReport;

// Where routed experts that are not all resident in VRAM are computed (GPU placement).
// Auto: whichever measures faster; Split: experts in the VRAM cache on the GPU while the CPU computes the rest
enum class GpuExperts { Auto, Gpu, Cpu, Split };

struct ModelOptions {
    int n_threads = 0;         // 0: all cores
    int64_t n_ctx = 0;         // KV cache length; 0: min(n_ctx_train, 4096)
    int64_t experts_per_token = 0;  // 0: the file's top-k; else 1..n_expert (resolve_top_k)
    // Prompt tokens processed together (--batch): each layer runs over the whole chunk, so a routed
    // expert is read once per chunk and applied to all its tokens. 1: token by token.
    int64_t prefill_chunk = 512;

    // Memory and expert streaming (engine/stream/).
    IoMode io = IoMode::Auto;          // --io
    uint64_t memory_budget = 0;        // --memory: bytes sluice may hold resident; 0: no limit
    uint64_t expert_cache = 0;         // --expert-cache (direct): 0: what the budget leaves
    CachePolicy cache_policy = CachePolicy::Lfu;  // --cache-policy (default measured: bench/B30.md)
    IoEngine io_engine = IoEngine::Auto;
    int io_depth = 32;                 // reads in flight
    bool prefetch = true;              // streaming: read guessed next-layer experts ahead (--no-prefetch)
    ReadFault read_fault;              // tests: fail chosen expert reads
    // Where per-token statistics are published (the UI keeps a reference and reads it from its own
    // thread); null: the model makes its own board (Model::stats()).
    std::shared_ptr<StatsBoard> stats;

    // GPU placement (Vulkan, shaders/): "none", "auto" (the first GPU; software drivers skipped) or a
    // device index (`sluice gpus` lists them). Dense weights and the KV cache go to VRAM; experts too
    // when they fit, else a VRAM expert cache of gpu_expert_cache bytes (0: what VRAM leaves) or the
    // CPU, as gpu_experts says. Without a usable GPU the model runs on the CPU (placement() says why).
    std::string gpu = "none";
    uint64_t gpu_expert_cache = 0;
    uint64_t gpu_memory = 0;  // --gpu-memory: VRAM this model may take at most (0: what the driver reports free)
    GpuExperts gpu_experts = GpuExperts::Auto;
    bool gpu_emulate_discrete = false;  // tests: a unified-memory device (lavapipe) taking the discrete path

    std::shared_ptr<StreamContext> stream;  // set by load_model(); architectures pass it along
};

// What a GPU backend reports (zeros on the CPU).
struct GpuCounters {
    double gpu_s_last_token = 0;       // GPU time of the last token (timestamps)
    uint64_t vram_cache_hits = 0, vram_cache_misses = 0;  // routed experts found in VRAM / not (uploaded; split: or the CPU's)
    uint64_t vram_bytes = 0;           // VRAM the model holds
    uint64_t vram_batch_bytes = 0;     // of the VRAM planned at load, what prompt batches' buffers may take
    uint64_t batched_tokens = 0;       // prompt tokens run in batches (GpuModel::forward_batch)
    uint64_t batch_passes_gpu = 0, batch_passes_cpu = 0;  // experts outside VRAM: a batch's MoE layers on either side
    // Expert bytes uploaded to VRAM (cache misses, prompt batches' arenas): copied by the GPU from the
    // pinned copy of the experts (imported host memory), or through the staging buffer.
    uint64_t upload_bytes_direct = 0, upload_bytes_staged = 0;
};

class Model {
public:
    virtual ~Model() = default;
    const Hparams& hparams() const { return hp_; }
    const gguf::File& file() const { return *file_; }
    int64_t n_ctx() const { return n_ctx_; }
    int64_t n_past() const { return n_past_; }
    ThreadPool& pool() { return *pool_; }
    // One line saying where weights and compute live ("cpu", or the GPU and what it holds; when a
    // GPU was asked for and not used, why).
    const std::string& placement() const { return placement_; }
    void set_placement(std::string s) { placement_ = std::move(s); }
    virtual GpuCounters gpu_counters() const { return {}; }

    // Statistics of every token (tok/s, expert reads, cache hits, time split, RSS): safe to read from
    // any thread.
    std::shared_ptr<StatsBoard> stats() const;
    // What is resident and how experts are read (filled by load_model).
    const MemoryReport& memory() const;
    StatsRecorder& recorder() { return *rec_; }

    // Forgets the conversation (KV cache and any recurrent state).
    virtual void reset() { n_past_ = 0; }
    // Forgets every position from n on (n <= n_past()): the next token goes to position n. Models with
    // a recurrent state (qwen35moe, qwen3next) cannot go back: for them only n == n_past() or 0 is
    // valid, anything else is an Error (restore a saved state instead).
    virtual void truncate(int64_t n);
    // The conversation state a prefill snapshot stores: every layer's KV cache for positions [0, n_past)
    // and any recurrent state, behind a header naming the layout. load_state throws Error on any
    // mismatch (other architecture or shapes, truncated blob) and then leaves the model reset.
    virtual std::vector<uint8_t> save_state() const = 0;
    virtual void load_state(std::span<const uint8_t> blob) = 0;

    // Feeds one token at position n_past(); returns logits (n_vocab), valid until the next call.
    virtual const float* forward(int32_t token) = 0;
    // The block maxima of the logits the last forward() returned (engine/sampler.h kLogitBlock), where
    // the model computes them (the GPU path), for the sampler to skip blocks; else empty.
    virtual std::span<const float> logits_block_max() const { return {}; }
    // Feeds tokens in order; returns logits of the last one (all = true: every position, n x n_vocab).
    // Prompts go in chunks of prefill_chunk tokens through forward_batch.
    virtual std::vector<float> forward_tokens(std::span<const int32_t> tokens, bool all);
    int64_t prefill_chunk() const { return chunk_; }

    // Prompt processing as the chat sees it: progress(done, total) as forward_tokens advances (tokens,
    // fractional inside a chunk: layers done / layers); `stop` checked between layers and tokens:
    // when set, forward_tokens throws Interrupted, keeping the chunks already finished.
    struct PromptHooks {
        std::function<void(double done, int64_t total)> progress;
        const std::atomic<bool>* stop = nullptr;
    };
    void set_prompt_hooks(PromptHooks h) { hooks_ = std::move(h); }

protected:
    Model(std::unique_ptr<gguf::File> file, const ModelOptions& opt, Hparams hp);
    void check_token(int32_t token) const;

    // One chunk of a prompt (1..prefill_chunk tokens) at positions n_past().. : logits of the last token
    // (all: of every token, n x n_vocab) into `logits`. Architectures override it with a layer-major
    // pass; this default feeds forward() token by token. On Interrupted, n_past() counts only whole
    // tokens (a layer-major pass leaves it at the chunk's start).
    virtual void forward_batch(std::span<const int32_t> tokens, bool all, float* logits);
    // Layer-major passes call this after each layer: reports progress, throws Interrupted on stop.
    void layer_done(int64_t layer);
    // Token-major passes: progress after token i of the chunk (0-based); check_stop() before a token
    // throws Interrupted on stop.
    void token_done(size_t i);
    // Passes that are neither: progress at `done` tokens of the chunk (fractional), stop checked.
    void chunk_progress(double done);
    void check_stop() const;

    // Every forward() opens one first thing: it times the token and publishes its statistics when it
    // closes (also when forward throws).
    class TokenScope {
    public:
        explicit TokenScope(Model& m);
        ~TokenScope();
        TokenScope(const TokenScope&) = delete;
        TokenScope& operator=(const TokenScope&) = delete;

    private:
        Model& m_;
    };

    std::shared_ptr<StreamContext> stream_;
    StatsRecorder* rec_ = nullptr;  // stream_->rec
    std::unique_ptr<gguf::File> file_;
    std::unique_ptr<ThreadPool> pool_;
    Hparams hp_;
    int64_t n_ctx_ = 0;
    int64_t n_past_ = 0;
    std::string placement_ = "cpu";

private:
    int64_t chunk_ = 512;
    PromptHooks hooks_;
    double prompt_done_ = 0;  // tokens of this forward_tokens call before the current chunk
    int64_t prompt_total_ = 0, chunk_n_ = 0;
};

// Opens `path`, picks the architecture from general.architecture (an unknown one is an Error naming
// it and listing the supported ones) and loads it.
std::unique_ptr<Model> load_model(const std::string& path, const ModelOptions& opt = {});
std::vector<std::string> supported_architectures();

// Architecture entry points (one file each under engine/models/).
std::unique_ptr<Model> load_qwen3moe(std::unique_ptr<gguf::File> file, const ModelOptions& opt);
std::unique_ptr<Model> load_qwen35moe(std::unique_ptr<gguf::File> file, const ModelOptions& opt);
std::unique_ptr<Model> load_deepseek2(std::unique_ptr<gguf::File> file, const ModelOptions& opt);
// GPU backends (engine/models/*_gpu.cpp); throw gpu::GpuError (an Error) when the GPU cannot be used.
std::unique_ptr<Model> load_qwen3moe_gpu(std::unique_ptr<gguf::File> file, const ModelOptions& opt);
std::unique_ptr<Model> load_qwen35moe_gpu(std::unique_ptr<gguf::File> file, const ModelOptions& opt);
std::unique_ptr<Model> load_deepseek2_gpu(std::unique_ptr<gguf::File> file, const ModelOptions& opt);

}  // namespace sluice
