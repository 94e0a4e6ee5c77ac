// Token sampling from logits, in llama.cpp's order: repetition penalty -> top-k -> softmax with
// temperature -> top-p -> min-p -> draw. Greedy (argmax after the penalty) when temperature <= 0.
#pragma once
#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace sluice {

struct SamplerParams {
    float temperature = 0.8f;     // <= 0: greedy
    int32_t top_k = 40;           // <= 0: off
    float top_p = 0.95f;          // >= 1: off
    float min_p = 0.05f;          // <= 0: off; keeps p >= min_p * p_max
    float repeat_penalty = 1.0f;  // 1: off; > 1 discourages the last repeat_last_n tokens
    int32_t repeat_last_n = 64;
    uint64_t seed = 0;            // same seed, logits and history -> same tokens
};

struct Candidate {
    int32_t id;
    float logit;
    float p;  // set by softmax
};

// The stages, exposed so each can be tested on hand-made candidates.
// Divides positive / multiplies negative logits of each distinct token in `recent` by `penalty`.
void apply_repeat_penalty(std::vector<Candidate>& c, std::span<const int32_t> recent, float penalty);
// Sorts by logit, descending (ties: lower id first), keeping the first k (all when k <= 0).
void apply_top_k(std::vector<Candidate>& c, int32_t k);
// p = softmax(logit / temperature). Expects c sorted (p follows the same order).
void apply_softmax(std::vector<Candidate>& c, float temperature);
// Keeps the shortest prefix whose probability reaches top_p (at least one candidate).
void apply_top_p(std::vector<Candidate>& c, float top_p);
// Keeps candidates with p >= min_p * max p (at least one).
void apply_min_p(std::vector<Candidate>& c, float min_p);

// Block maxima that may come with the logits (Model::logits_block_max(), from the GPU): block_max[b]
// is the largest of logits [kLogitBlock * b, + kLogitBlock), NaN ignored; the scans below then skip
// the blocks at or below their threshold without reading them (reading 151936 logits from memory the
// GPU just wrote takes ~60 us, a decode step of a small model ~3 ms). Empty, or of another size:
// every logit is read. The result is the same either way.
constexpr size_t kLogitBlock = 64;

// What apply_repeat_penalty then apply_top_k(k) keep of a candidate per logit (k >= 1), into out,
// without building a candidate per vocabulary entry: one pass that keeps what beats the running k-th
// logit (~0.3 ms -> tens of us for 151936 logits, which a GPU decodes in ~4 ms).
void top_candidates(std::span<const float> logits, int32_t k, std::span<const int32_t> recent, float penalty,
                    std::vector<Candidate>& out, std::span<const float> block_max = {});
// The index of the largest logit (ties: the lowest), as greedy sampling without a penalty picks.
int32_t argmax(std::span<const float> logits, std::span<const float> block_max = {});

class Sampler {
public:
    explicit Sampler(const SamplerParams& p = {});

    // Picks the next token from one position's logits (n_vocab values). Does not record it: call
    // accept() for every token the model is fed, prompt included, so the penalty sees them.
    // block_max: the logits' block maxima where the model has them (kLogitBlock), else empty.
    int32_t sample(std::span<const float> logits, std::span<const float> block_max = {});
    void accept(int32_t token);
    void reset();  // forget history, reseed

    const SamplerParams& params() const { return p_; }
    // The candidates left before the last draw (for display or tests).
    const std::vector<Candidate>& last_candidates() const { return cand_; }

private:
    double uniform();  // [0, 1) from the 53 high bits: identical on every platform
    int32_t draw();    // softmax with temperature, top-p, min-p over cand_ (sorted), then the draw

    SamplerParams p_;
    std::mt19937_64 rng_;
    std::deque<int32_t> recent_;
    std::vector<Candidate> cand_;
};

}  // namespace sluice
