#version 450
// Merges the splits of attn_split for each head (workgroup h):
// out[d] = sum_s exp(m_s - M) o_s[d] / sum_s exp(m_s - M) l_s, M = max_s m_s (empty splits: l_s = 0).
#include "common.glsl"

layout(local_size_x = 128) in;
layout(push_constant) uniform PC { AttnCombinePush p; };
layout(binding = 0, std430) readonly buffer PartBuf { float part[]; };
layout(binding = 1, std430) writeonly buffer OutBuf { float O[]; };

void main() {
    const uint h = gl_WorkGroupID.x, stride = p.head_dim_v + 2u;
    const uint base = p.part_off + h * p.n_splits * stride;
    float M = -1.0 / 0.0;
    for (uint s = 0u; s < p.n_splits; ++s)
        if (part[base + s * stride + 1u] > 0.0) M = max(M, part[base + s * stride]);
    float l = 0.0;
    for (uint s = 0u; s < p.n_splits; ++s) {
        const float ls = part[base + s * stride + 1u];
        if (ls > 0.0) l += exp(part[base + s * stride] - M) * ls;
    }
    for (uint d = gl_LocalInvocationIndex; d < p.head_dim_v; d += 128u) {
        float o = 0.0;
        for (uint s = 0u; s < p.n_splits; ++s)
            if (part[base + s * stride + 1u] > 0.0) o += exp(part[base + s * stride] - M) * part[base + s * stride + 2u + d];
        O[p.out_off + h * p.head_dim_v + d] = o / l;
    }
}
