#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>

namespace sluice {

namespace {
// The order top-k keeps: logit descending, ties to the lower id.
bool better(const Candidate& a, const Candidate& b) { return a.logit != b.logit ? a.logit > b.logit : a.id < b.id; }
}  // namespace

void apply_repeat_penalty(std::vector<Candidate>& c, std::span<const int32_t> recent, float penalty) {
    if (penalty == 1.0f || recent.empty()) return;
    std::unordered_set<int32_t> seen(recent.begin(), recent.end());
    for (auto& x : c) {
        if (!seen.count(x.id)) continue;
        x.logit = x.logit > 0 ? x.logit / penalty : x.logit * penalty;
    }
}

void apply_top_k(std::vector<Candidate>& c, int32_t k) {
    if (k > 0 && (size_t)k < c.size()) {
        std::partial_sort(c.begin(), c.begin() + k, c.end(), better);
        c.resize(k);
    } else {
        std::sort(c.begin(), c.end(), better);
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

namespace {

// Whether one of p[0 .. 16) > t: 4 vector compares (GCC vector extensions; SSE2 at least).
bool any_above(const float* p, float t) {
    typedef float v4 __attribute__((vector_size(16)));
    typedef int i4 __attribute__((vector_size(16)));
    v4 a, b, c, d;
    std::memcpy(&a, p, 16);
    std::memcpy(&b, p + 4, 16);
    std::memcpy(&c, p + 8, 16);
    std::memcpy(&d, p + 12, 16);
    const v4 tv = {t, t, t, t};
    const i4 m = (a > tv) | (b > tv) | (c > tv) | (d > tv);
    return (m[0] | m[1] | m[2] | m[3]) != 0;
}

// The m best of logits by (logit desc, id asc), unordered, into out. The first m enter as they are;
// after that a logit enters only above the m-th best so far (strictly: an equal one comes later, so
// its id is higher and it ranks below), and the buffer is cut back to m when it fills. Blocks of 16
// are tested with vector compares first: most of a vocabulary never enters.
void largest(std::span<const float> l, size_t m, std::vector<Candidate>& out, std::span<const float> bm) {
    out.clear();
    const size_t n = l.size(), cap = std::max<size_t>(4 * m, 256);
    if (bm.size() != (n + kLogitBlock - 1) / kLogitBlock) bm = {};
    size_t i = 0;
    for (; i < n && out.size() < m; ++i) out.push_back({int32_t(i), l[i], 0.0f});
    if (out.size() < m || i == n) return;
    float thr = 0;
    auto cut = [&] {
        std::nth_element(out.begin(), out.begin() + ptrdiff_t(m - 1), out.end(), better);
        out.resize(m);
        thr = out[m - 1].logit;
    };
    cut();
    for (; i < n; ++i) {
        if (!bm.empty() && i % kLogitBlock == 0 && !(bm[i / kLogitBlock] > thr)) {  // nothing above thr
            i = std::min(i + kLogitBlock, n) - 1;
            continue;
        }
        if (i % 16 == 0 && i + 16 <= n && !any_above(&l[i], thr)) {
            i += 15;
            continue;
        }
        if (l[i] > thr) {
            out.push_back({int32_t(i), l[i], 0.0f});
            if (out.size() == cap) cut();
        }
    }
    if (out.size() > m) cut();
}

}  // namespace

void top_candidates(std::span<const float> logits, int32_t k, std::span<const int32_t> recent, float penalty,
                    std::vector<Candidate>& out, std::span<const float> block_max) {
    std::vector<int32_t> rec;
    if (penalty != 1.0f) {
        for (int32_t id : recent)
            if (id >= 0 && size_t(id) < logits.size()) rec.push_back(id);
        std::sort(rec.begin(), rec.end());
        rec.erase(std::unique(rec.begin(), rec.end()), rec.end());
    }
    // The penalty moves only the recent tokens: every token outside them that ranks in the top k
    // after it ranks in the top k + |recent| before it, and the recent ones join wherever they are.
    largest(logits, size_t(std::max(k, 1)) + rec.size(), out, block_max);
    for (int32_t id : rec)
        if (std::none_of(out.begin(), out.end(), [&](const Candidate& c) { return c.id == id; }))
            out.push_back({id, logits[size_t(id)], 0.0f});
    apply_repeat_penalty(out, rec, penalty);
    apply_top_k(out, std::max(k, 1));
}

int32_t argmax(std::span<const float> logits, std::span<const float> block_max) {
    std::vector<Candidate> c;
    top_candidates(logits, 1, {}, 1.0f, c, block_max);
    return c.empty() ? 0 : c[0].id;
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

int32_t Sampler::sample(std::span<const float> logits, std::span<const float> block_max) {
    const bool greedy = p_.temperature <= 0.0f;
    if (greedy || (p_.top_k > 0 && size_t(p_.top_k) < logits.size())) {  // the usual case: a few candidates
        const std::vector<int32_t> recent(recent_.begin(), recent_.end());
        top_candidates(logits, greedy ? 1 : p_.top_k, recent, p_.repeat_penalty, cand_, block_max);
        if (greedy) {
            cand_.resize(1);
            cand_[0].p = 1.0f;
            return cand_[0].id;
        }
        return draw();
    }
    cand_.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) cand_[i] = {(int32_t)i, logits[i], 0.0f};
    if (p_.repeat_penalty != 1.0f && !recent_.empty()) {
        std::vector<int32_t> recent(recent_.begin(), recent_.end());
        apply_repeat_penalty(cand_, recent, p_.repeat_penalty);
    }
    apply_top_k(cand_, p_.top_k);  // every candidate (top-k off or >= the vocabulary), sorted
    return draw();
}

int32_t Sampler::draw() {
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
