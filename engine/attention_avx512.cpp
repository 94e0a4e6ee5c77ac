// attention_chunk's tile for AVX-512: 16-float vectors, Q K^T 4 cache rows x 16 tile rows, P V 4 rows x 64 dims per step.
#include "engine/attention_tile.h"

namespace sluice::detail {

void attn_tile_avx512(const AttnChunk& a, int64_t g, int64_t r0, int64_t r1, float* scratch) {
    attn_tile<16, 1, 4>(a, g, r0, r1, scratch);
}

}  // namespace sluice::detail
