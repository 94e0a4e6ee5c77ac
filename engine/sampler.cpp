#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace sluice {

void apply_repeat_penalty(std::vector<Candidate>& c, std::span<const int32_t> recent, float penalty) {
    if (penalty == 1.0f || recent.empty()) return;
    std::unordered_set<int32_t> seen(recent.begin(), recent.end());
    for (auto& x : c) {
        if (!seen.count(x.id)) continue;
        x.logit = x.logit > 0 ? x.logit / penalty : x.logit * penalty;
    }
}

void apply_top_k(std::vector<Candidate>& c, int32_t k) {
    auto by_logit = [](const Candidate& a, const Candidate& b) { return a.logit != b.logit ? a.logit > b.logit : a.id < b.id; };
    if (k > 0 && (size_t)k < c.size()) {
        std::partial_sort(c.begin(), c.begin() + k, c.end(), by_logit);
        c.resize(k);
    } else {
        std::sort(c.begin(), c.end(), by_logit);
    }
}

void apply_softmax(std::vector<Candidate>& c, float temperature) {
    if (c.empty()) return;
    float mx = c[0].logit;
    for (const auto& x : c) mx = std::max(mx, x.logit);
    double sum = 0;
    for (auto& x : c) {
        x.p = std::exp((x.logit - mx) / temperature);
        sum += x.p;
    }
    for (auto& x : c) x.p = (float)(x.p / sum);
}

void apply_top_p(std::vector<Candidate>& c, float top_p) {
    if (top_p >= 1.0f) return;
    double cum = 0;
    for (size_t i = 0; i < c.size(); ++i) {
        cum += c[i].p;
        if (cum >= top_p) {
            c.resize(i + 1);
            return;
        }
    }
}

void apply_min_p(std::vector<Candidate>& c, float min_p) {
    if (min_p <= 0.0f || c.empty()) return;
    float mx = 0;
    for (const auto& x : c) mx = std::max(mx, x.p);
    const float floor = min_p * mx;
    // Stable: the order (by logit) is kept for the draw.
    c.erase(std::remove_if(c.begin(), c.end(), [&](const Candidate& x) { return x.p < floor; }), c.end());
}

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}

void Sampler::accept(int32_t token) {
    if (p_.repeat_last_n <= 0) return;
    recent_.push_back(token);
    while (recent_.size() > (size_t)p_.repeat_last_n) recent_.pop_front();
}

void Sampler::reset() {
    recent_.clear();
    rng_.seed(p_.seed);
}

double Sampler::uniform() { return (double)(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(std::span<const float> logits) {
    cand_.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) cand_[i] = {(int32_t)i, logits[i], 0.0f};
    if (p_.repeat_penalty != 1.0f && !recent_.empty()) {
        std::vector<int32_t> recent(recent_.begin(), recent_.end());
        apply_repeat_penalty(cand_, recent, p_.repeat_penalty);
    }
    if (p_.temperature <= 0.0f) {
        auto best = std::max_element(cand_.begin(), cand_.end(), [](const Candidate& a, const Candidate& b) {
            return a.logit != b.logit ? a.logit < b.logit : a.id > b.id;  // ties: lowest id
        });
        Candidate g = *best;
        g.p = 1.0f;
        cand_.assign(1, g);
        return g.id;
    }
    apply_top_k(cand_, p_.top_k);
    apply_softmax(cand_, p_.temperature);
    apply_top_p(cand_, p_.top_p);
    apply_min_p(cand_, p_.min_p);

    // Draw from what is left, renormalised.
    double total = 0;
    for (const auto& x : cand_) total += x.p;
    double u = uniform() * total, cum = 0;
    for (const auto& x : cand_) {
        cum += x.p;
        if (u < cum) return x.id;
    }
    return cand_.back().id;  // rounding at the top end
}

}  // namespace sluice
