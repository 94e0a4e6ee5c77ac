// Shared by the split attention kernels (attn_split.comp, mla_attn.comp): sums and maxima over a
// team of 32 or the workgroup, and (with MERGE) the merge of a head's splits. The includer declares
// shared float red[ATTN_THREADS] (and for merge: the part and O buffers, and p with n_splits,
// part_off and out_off).

// Sum over a team of 32 (see matvec.comp's team_sum). Uniform control flow.
float team_sum(float v, uint team, uint lane) {
    if (gl_SubgroupSize == 32u) return subgroupAdd(v);
    red[team * 32u + lane] = v;
    barrier();
    float t = 0.0;
    for (uint i = 0u; i < 32u; ++i) t += red[team * 32u + i];
    barrier();
    return t;
}

// Max / sum over the workgroup, in every invocation: subgroup operations, then one shared-memory
// round over the subgroups. Uniform control flow; the barriers also publish earlier shared writes.
float reduce_max(float v) {
    v = subgroupMax(v);
    barrier();
    if (subgroupElect()) red[gl_SubgroupID] = v;
    barrier();
    float r = -1.0 / 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; ++i) r = max(r, red[i]);
    barrier();
    return r;
}
float reduce_sum(float v) {
    v = subgroupAdd(v);
    barrier();
    if (subgroupElect()) red[gl_SubgroupID] = v;
    barrier();
    float r = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; ++i) r += red[i];
    barrier();
    return r;
}

#ifdef MERGE
// out (head h) = the merge of its n_splits parts: sum_s exp(m_s - M) o_s / sum_s exp(m_s - M) l_s.
// The parts come from L2 at its latency: the splits' (m, l) are read by one invocation each, and the
// o_s of a dim in rounds of MERGE_LOADS independent loads.
#define MERGE_LOADS 8u
shared float split_w[ATTN_SPLITS_MAX];
void merge(uint h, uint hdv, uint n) {  // n: the head's splits that hold positions (parts 0 .. n - 1)
    const uint tid = gl_LocalInvocationIndex;
    const uint stride = hdv + 2u, base = p.part_off + h * p.n_splits * stride;  // parts: n_splits per head
    float mx = -1.0 / 0.0;
    for (uint s = tid; s < n; s += ATTN_THREADS) {
        const float m = part[base + s * stride], l = part[base + s * stride + 1u];
        split_w[s] = l > 0.0 ? m : -1.0 / 0.0;  // an empty split weighs 0
        if (l > 0.0) mx = max(mx, m);
    }
    mx = reduce_max(mx);
    float den = 0.0;
    for (uint s = tid; s < n; s += ATTN_THREADS) {
        const float w = exp(split_w[s] - mx);
        split_w[s] = w;
        den += w * part[base + s * stride + 1u];
    }
    den = reduce_sum(den);  // its barriers also publish split_w
    for (uint d = tid; d < hdv; d += ATTN_THREADS) {
        float o = 0.0;
        for (uint s0 = 0u; s0 < n; s0 += MERGE_LOADS) {
            float v[MERGE_LOADS];
            [[unroll]] for (uint u = 0u; u < MERGE_LOADS; ++u) v[u] = part[base + min(s0 + u, n - 1u) * stride + 2u + d];
            [[unroll]] for (uint u = 0u; u < MERGE_LOADS; ++u)
                if (s0 + u < n) o += split_w[s0 + u] * v[u];
        }
        O[p.out_off + h * hdv + d] = o / den;
    }
}
#endif
