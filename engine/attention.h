// Blocked causal attention over a float KV cache: the prompt-chunk and decode kernel of every
// architecture (GQA heads and MLA's latent MQA). attend_head (blocks.h) is its scalar reference.
#pragma once
#include <cstdint>

namespace sluice {

class ThreadPool;

// n_q consecutive queries at positions pos0 .. pos0 + n_q - 1, their K and V already in the cache:
// head h of query i sees cache rows [0, pos0 + i + 1) of kv head g = h / (n_head / n_head_kv).
//   out[i, h] (head_dim_v) = sum_t softmax_t(q[i, h] . k_t * scale) v_t
// A tile is one kv head and a run of the (query, head) rows that share it; each K and V row it loads
// feeds all of them (Q K^T and P V as small matrix products, online softmax over blocks of 64 cache
// rows). A row's result depends only on the row, never on which tile holds it: a chunk and token-by-
// token decode agree to the bit (on the same ISA).
struct AttnChunk {
    const float* q;  // head h of query i at q + i * q_row + h * q_head (head_dim floats)
    int64_t q_row, q_head;
    float* out;  // out + i * out_row + h * out_head (head_dim_v floats); may be the q row itself
    int64_t out_row, out_head;
    const float* k;  // cache row t of kv head g at k + t * k_stride + g * head_dim
    const float* v;  // v + t * v_stride + g * head_dim_v
    int64_t k_stride, v_stride;
    int64_t pos0, n_q, n_head, n_head_kv, head_dim, head_dim_v;
    float scale;                     // of the scores
    const float* q_scale = nullptr;  // when set: n_q scales, one per query, instead of `scale`
};
void attention_chunk(const AttnChunk& a, ThreadPool& pool);

}  // namespace sluice
