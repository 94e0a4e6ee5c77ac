// Internal to engine/tensor (the grid types' quantizers): the grid entry nearest to a point, exactly.
// A grid (iq_grids.inc) holds entries of D values, each one of L sorted levels, given as codes of
// `bits` bits per value. Brute force over IQ1's 2048 entries costs 16k multiply-adds per 8 weights;
// this walks the grid's prefixes depth first instead, nearest levels first, and stops a branch once
// its cost so far plus each remaining value's least cost reaches the best found: the first descent is
// usually already the answer, so a query visits a few dozen prefixes.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

namespace sluice::detail {

template <int D, int L>
class GridSearch {
public:
    template <size_t N>
    GridSearch(const uint16_t (&codes)[N], const int8_t (&levels)[L], int bits) {
        for (int l = 0; l < L; ++l) level_[l] = levels[l];
        int size = 1;
        for (int k = 0; k <= D; ++k, size *= L) {
            offset_[k] = int(present_.size());
            present_.resize(present_.size() + size_t(size), 0);
        }
        leaf_.assign(size_t(size / L), -1);
        for (size_t e = 0; e < N; ++e) {
            int code = 0, mul = 1;
            for (int k = 0; k < D; ++k, mul *= L) {
                code += ((codes[e] >> (bits * k)) & ((1 << bits) - 1)) * mul;
                present_[size_t(offset_[k + 1] + code)] = 1;
            }
            leaf_[size_t(code)] = int16_t(e);
        }
    }

    // Entry nearest to t (D values; |t| <= 1e6 keeps the costs finite) in squared distance; *cost
    // gets that distance.
    int nearest(const float* t, float* cost) const {
        Query q;
        for (int k = 0; k < D; ++k) {
            float c[L];
            for (int l = 0; l < L; ++l) c[l] = (t[k] - level_[l]) * (t[k] - level_[l]);
            // levels by cost: outward from the nearest (levels are sorted, so costs fall then rise)
            int lo = 0;
            for (int l = 1; l < L; ++l)
                if (c[l] < c[lo]) lo = l;
            int hi = lo + 1, i = 0;
            q.order[k][i++] = uint8_t(lo--);
            while (i < L) q.order[k][i++] = uint8_t(hi >= L || (lo >= 0 && c[lo] <= c[hi]) ? lo-- : hi++);
            std::memcpy(q.cost[k], c, sizeof c);
        }
        q.rest[D] = 0;
        for (int k = D - 1; k >= 0; --k) q.rest[k] = q.rest[k + 1] + q.cost[k][q.order[k][0]];
        walk(q, 0, 0, 1, 0.f);
        *cost = q.best;
        return leaf_[size_t(q.best_code)];
    }

private:
    struct Query {
        float cost[D][L];
        uint8_t order[D][L];
        float rest[D + 1];  // least cost of values k.. on
        float best = 3e38f;
        int best_code = -1;
    };

    void walk(Query& q, int k, int code, int mul, float partial) const {
        for (int i = 0; i < L; ++i) {
            const int l = q.order[k][i];
            const float p = partial + q.cost[k][l];
            if (p + q.rest[k + 1] >= q.best && q.best_code >= 0) return;  // later levels cost more
            const int c = code + l * mul;
            if (!present_[size_t(offset_[k + 1] + c)]) continue;
            if (k + 1 == D) {
                q.best = p, q.best_code = c;
                return;
            }
            walk(q, k + 1, c, mul * L, p);
        }
    }

    float level_[L];
    int offset_[D + 1];
    std::vector<uint8_t> present_;  // per depth k: which codes of the first k values some entry has
    std::vector<int16_t> leaf_;     // full code -> entry
};

}  // namespace sluice::detail
