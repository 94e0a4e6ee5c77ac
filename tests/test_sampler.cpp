// Sampler: greedy, reproducibility, each filter on hand-made distributions, and the draw's frequencies.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "engine/sampler.h"

using namespace sluice;

namespace {
std::vector<float> logits_of(std::initializer_list<double> probs) {
    std::vector<float> l;
    for (double p : probs) l.push_back((float)std::log(p));
    return l;
}
std::vector<Candidate> sorted_candidates(std::initializer_list<double> probs) {
    std::vector<Candidate> c;
    int32_t i = 0;
    for (float l : logits_of(probs)) c.push_back({i++, l, 0.0f});
    apply_top_k(c, 0);
    apply_softmax(c, 1.0f);
    return c;
}
std::set<int32_t> ids(const std::vector<Candidate>& c) {
    std::set<int32_t> s;
    for (const auto& x : c) s.insert(x.id);
    return s;
}
std::vector<float> random_logits(uint64_t seed, int n) {
    std::mt19937_64 g(seed);
    std::vector<float> l(n);
    for (auto& x : l) x = (float)((g() >> 11) * 0x1.0p-53 * 8.0 - 4.0);
    return l;
}
}  // namespace

TEST(Sampler, GreedyPicksArgmax) {
    SamplerParams p;
    p.temperature = 0;
    Sampler s(p);
    std::vector<float> l{0.1f, 2.5f, -1.0f, 2.4f};
    EXPECT_EQ(s.sample(l), 1);
    std::vector<float> tie{1.0f, 3.0f, 3.0f};
    EXPECT_EQ(s.sample(tie), 1);  // ties go to the lower id
    auto big = random_logits(7, 151936);
    EXPECT_EQ(s.sample(big), std::max_element(big.begin(), big.end()) - big.begin());
}

TEST(Sampler, RepeatPenaltyChangesGreedyChoice) {
    SamplerParams p;
    p.temperature = 0;
    p.repeat_penalty = 1.5f;
    Sampler s(p);
    std::vector<float> l{2.0f, 1.5f, -1.0f};
    s.accept(0);
    EXPECT_EQ(s.sample(l), 1);  // 2.0 / 1.5 < 1.5
    std::vector<Candidate> c{{0, 2.0f, 0}, {1, -1.0f, 0}, {2, 1.0f, 0}};
    std::vector<int32_t> recent{0, 1, 1};  // a token seen twice is penalised once
    apply_repeat_penalty(c, recent, 2.0f);
    EXPECT_FLOAT_EQ(c[0].logit, 1.0f);
    EXPECT_FLOAT_EQ(c[1].logit, -2.0f);
    EXPECT_FLOAT_EQ(c[2].logit, 1.0f);
}

TEST(Sampler, SameSeedSameSequence) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 1234;
    auto run = [&](uint64_t seed) {
        p.seed = seed;
        Sampler s(p);
        std::vector<int32_t> out;
        for (int i = 0; i < 64; ++i) out.push_back(s.sample(random_logits(100 + i, 1000)));
        return out;
    };
    EXPECT_EQ(run(1234), run(1234));
    EXPECT_NE(run(1234), run(1235));
    // reset() starts the same sequence again.
    p.seed = 99;
    Sampler s(p);
    auto l = random_logits(5, 1000);
    int32_t a = s.sample(l), b = s.sample(l);
    s.reset();
    EXPECT_EQ(s.sample(l), a);
    EXPECT_EQ(s.sample(l), b);
}

TEST(Sampler, TopKOneIsGreedy) {
    SamplerParams p;
    p.temperature = 1.5f;
    p.top_k = 1;
    p.seed = 3;
    Sampler s(p);
    for (int i = 0; i < 20; ++i) {
        auto l = random_logits(40 + i, 5000);
        EXPECT_EQ(s.sample(l), std::max_element(l.begin(), l.end()) - l.begin());
    }
}

TEST(Sampler, TopKKeepsTheKLargest) {
    std::vector<Candidate> c;
    std::vector<float> l{0.5f, 3.0f, -2.0f, 1.0f, 2.0f};
    for (int32_t i = 0; i < 5; ++i) c.push_back({i, l[i], 0});
    apply_top_k(c, 3);
    ASSERT_EQ(c.size(), 3u);
    EXPECT_EQ(c[0].id, 1);
    EXPECT_EQ(c[1].id, 4);
    EXPECT_EQ(c[2].id, 3);
}

TEST(Sampler, TopPKeepsSmallestSetReachingP) {
    auto c = sorted_candidates({0.1, 0.4, 0.3, 0.15, 0.05});
    auto c1 = c;
    apply_top_p(c1, 0.5f);  // 0.4 < 0.5 <= 0.4 + 0.3
    EXPECT_EQ(ids(c1), (std::set<int32_t>{1, 2}));
    auto c2 = c;
    apply_top_p(c2, 0.4f);  // the first alone reaches it
    EXPECT_EQ(ids(c2), (std::set<int32_t>{1}));
    auto c3 = c;
    apply_top_p(c3, 0.9f);  // 0.4 + 0.3 + 0.15 = 0.85 < 0.9
    EXPECT_EQ(ids(c3), (std::set<int32_t>{1, 2, 3, 0}));
    auto c4 = c;
    apply_top_p(c4, 1.0f);
    EXPECT_EQ(c4.size(), 5u);
}

TEST(Sampler, MinPKeepsThoseNearTheTop) {
    auto c = sorted_candidates({0.1, 0.4, 0.3, 0.15, 0.05});
    auto c1 = c;
    apply_min_p(c1, 0.3f);  // floor 0.12
    EXPECT_EQ(ids(c1), (std::set<int32_t>{1, 2, 3}));
    auto c2 = c;
    apply_min_p(c2, 0.8f);  // floor 0.32
    EXPECT_EQ(ids(c2), (std::set<int32_t>{1}));
    auto c3 = c;
    apply_min_p(c3, 0.0f);
    EXPECT_EQ(c3.size(), 5u);
}

TEST(Sampler, FiltersComposeInOrder) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 4;       // drops id 4 (0.05)
    p.top_p = 0.8f;    // renormalised over 0.95: 0.42, 0.74, 0.89 -> keeps ids 1, 2, 3
    p.min_p = 0.4f;    // floor 0.4 * 0.42 = 0.168 (of 0.95) -> drops id 3 (0.158)
    Sampler s(p);
    s.sample(logits_of({0.1, 0.4, 0.3, 0.15, 0.05}));
    EXPECT_EQ(ids(s.last_candidates()), (std::set<int32_t>{1, 2}));
}

TEST(Sampler, FrequenciesFollowTheDistribution) {
    // Temperature 1, no filters: draws follow p. Fixed seed, so the statistic is deterministic.
    const std::vector<double> p{0.5, 0.25, 0.15, 0.1};
    SamplerParams sp;
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.seed = 42;
    Sampler s(sp);
    auto l = logits_of({0.5, 0.25, 0.15, 0.1});
    const int n = 20000;
    std::vector<int> count(p.size());
    for (int i = 0; i < n; ++i) count[s.sample(l)]++;
    double chi2 = 0;
    for (size_t i = 0; i < p.size(); ++i) chi2 += std::pow(count[i] - n * p[i], 2) / (n * p[i]);
    std::printf("[ chi2     ] %.2f over counts %d %d %d %d\n", chi2, count[0], count[1], count[2], count[3]);
    EXPECT_LT(chi2, 16.27);  // 3 degrees of freedom, p = 0.001

    // Temperature 0.5 sharpens: p ~ p^2, so id 0 takes 0.25 / 0.3750 = 2/3.
    sp.temperature = 0.5f;
    Sampler s2(sp);
    int zero = 0;
    for (int i = 0; i < n; ++i) zero += s2.sample(l) == 0;
    EXPECT_NEAR(zero / (double)n, 0.25 / (0.25 + 0.0625 + 0.0225 + 0.01), 0.015);
}

// The largest of each kLogitBlock logits, NaN ignored (what the GPU's block_max.comp writes).
std::vector<float> block_max_of(const std::vector<float>& l) {
    std::vector<float> bm((l.size() + kLogitBlock - 1) / kLogitBlock, -INFINITY);
    for (size_t i = 0; i < l.size(); ++i)
        if (l[i] > bm[i / kLogitBlock]) bm[i / kLogitBlock] = l[i];
    return bm;
}

// top_candidates (the sampler's path whenever top-k is on) against the stages it replaces: a
// candidate per logit, apply_repeat_penalty, apply_top_k. Logits drawn from few values (ties), -inf
// entries, penalties that lower and raise, recent ids in and out of the top, vocabularies below and
// far above the scan's buffer. With the logits' block maxima (which let the scan skip blocks) the
// same; with block maxima of the wrong length (ignored) too.
TEST(Sampler, TopCandidatesEqualPenaltyThenTopK) {
    std::mt19937_64 g(1234);
    for (int trial = 0; trial < 300; ++trial) {
        const int n = trial % 3 == 0 ? 7 + int(g() % 40) : trial % 3 == 1 ? 1000 + int(g() % 3000) : 151936;
        const int levels = trial % 2 ? 9 : 1 << 20;  // few distinct values: many ties
        std::vector<float> l(static_cast<size_t>(n));
        for (auto& x : l) x = float(int(g() % levels)) / float(levels) * 8.0f - 4.0f;
        if (trial % 5 == 0)
            for (int i = 0; i < n / 10; ++i) l[g() % size_t(n)] = -INFINITY;
        std::vector<int32_t> recent;
        for (int i = 0; i < int(g() % 70); ++i) recent.push_back(int32_t(g() % uint64_t(n + 3)) - 1);  // some out of range
        const float penalties[] = {1.0f, 1.3f, 0.7f};
        const float pen = penalties[trial % 3];
        const int32_t ks[] = {1, 2, 40, 200};
        const int32_t k = ks[trial % 4];
        std::vector<Candidate> ref;
        for (int i = 0; i < n; ++i) ref.push_back({i, l[size_t(i)], 0.0f});
        apply_repeat_penalty(ref, recent, pen);
        apply_top_k(ref, k);
        std::vector<Candidate> got;
        top_candidates(l, k, recent, pen, got);
        ASSERT_EQ(got.size(), ref.size()) << "trial " << trial << " n " << n << " k " << k;
        for (size_t i = 0; i < ref.size(); ++i) {
            ASSERT_EQ(got[i].id, ref[i].id) << "trial " << trial << " rank " << i;
            ASSERT_EQ(got[i].logit, ref[i].logit) << "trial " << trial << " rank " << i;
        }
        const std::vector<float> bm = block_max_of(l);
        for (const std::span<const float> b : {std::span<const float>(bm), std::span<const float>(bm).first(bm.size() - 1)}) {
            std::vector<Candidate> with;
            top_candidates(l, k, recent, pen, with, b);
            ASSERT_EQ(with.size(), ref.size()) << "trial " << trial << " with block maxima";
            for (size_t i = 0; i < ref.size(); ++i) {
                ASSERT_EQ(with[i].id, ref[i].id) << "trial " << trial << " rank " << i << " with block maxima";
                ASSERT_EQ(with[i].logit, ref[i].logit) << "trial " << trial << " rank " << i << " with block maxima";
            }
        }
        if (pen == 1.0f) {
            EXPECT_EQ(argmax(l), ref[0].id);
            EXPECT_EQ(argmax(l, bm), ref[0].id);
        }
    }
}

