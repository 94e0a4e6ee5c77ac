#include "engine/attention.h"

#include <algorithm>
#include <vector>

#include "engine/attention_tile.h"
#include "engine/tensor/kernels.h"
#include "engine/tensor/threadpool.h"

namespace sluice {

namespace detail {
void attn_tile_avx2(const AttnChunk& a, int64_t g, int64_t r0, int64_t r1, float* scratch);
void attn_tile_avx512(const AttnChunk& a, int64_t g, int64_t r0, int64_t r1, float* scratch);
}  // namespace detail

void attention_chunk(const AttnChunk& a, ThreadPool& pool) {
    using TileFn = void (*)(const AttnChunk&, int64_t, int64_t, int64_t, float*);
    const Isa isa = active_isa();
    const TileFn tile = isa == Isa::Avx512 ? detail::attn_tile_avx512
                        : isa == Isa::Avx2 ? detail::attn_tile_avx2
                                           : detail::attn_tile<4, 2, 2>;  // baseline SSE2 vectors
    const int64_t group = a.n_head / a.n_head_kv, n_rows = a.n_q * group;
    // Up to 64 rows a tile (32 for MLA's 576-wide keys, so a tile's scratch stays in L2), fewer when
    // that leaves threads idle: a decode step's 8 rows per kv head are one tile each.
    const int64_t max_rows = a.head_dim > 256 ? 32 : 64;
    const int64_t want = std::max<int64_t>(1, (2 * pool.size() + a.n_head_kv - 1) / a.n_head_kv);
    const int64_t rows = std::clamp<int64_t>((n_rows + want - 1) / want, std::min<int64_t>(n_rows, 8), max_rows);
    const int64_t n_tiles = (n_rows + rows - 1) / rows;
    // Later tiles (longer rows of the cache) first, so the last ones claimed are short.
    pool.parallel_for(n_tiles * a.n_head_kv, 1, [&](int64_t x0, int64_t x1, int) {
        thread_local std::vector<float> scratch;
        const size_t need = size_t(detail::attn_scratch(rows, a.head_dim, a.head_dim_v));
        if (scratch.size() < need) scratch.resize(need);
        for (int64_t x = x0; x < x1; ++x) {
            const int64_t t = n_tiles - 1 - x / a.n_head_kv, g = x % a.n_head_kv;
            tile(a, g, t * rows, std::min(n_rows, (t + 1) * rows), scratch.data());
        }
    });
}

}  // namespace sluice
