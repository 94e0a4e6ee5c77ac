#version 450
// A prompt batch's routed experts grouped by expert, for mm_<type>_ids (mm.comp): one workgroup counts
// the (token, slot) entries per expert, lays them out expert by expert, and cuts each expert's run into
// tiles of at most bn entries. Group buffer (uints): word 0 the number of tiles, then per tile (expert,
// first entry, entries), then from entries_off the entries j * k + slot. Within an expert the entries'
// order depends on the atomics, but each column of the products is computed alone and written by its
// entry, so the results do not.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(push_constant) uniform PC { MoeGroupPush p; };
layout(binding = 0, std430) readonly buffer IdsBuf { int ids[]; };
layout(binding = 1, std430) writeonly buffer GrpBuf { uint G[]; };

shared uint cnt[MV_ROUTE_MAX], off[MV_ROUTE_MAX], fill[MV_ROUTE_MAX];

uint expert_of(uint i) {  // entry i = j * k + slot
    const uint j = i / p.k;
    return uint(ids[p.ids_off + j * p.ids_stride + (i - j * p.k)]);
}

void main() {
    const uint tid = gl_LocalInvocationIndex, n = p.n_tokens * p.k;
    for (uint e = tid; e < p.n_expert; e += 256u) {
        cnt[e] = 0u;
        fill[e] = 0u;
    }
    barrier();
    for (uint i = tid; i < n; i += 256u) atomicAdd(cnt[expert_of(i)], 1u);
    barrier();
    if (tid == 0u) {  // at most MV_ROUTE_MAX experts: a serial pass is a few microseconds
        uint o = 0u, nt = 0u;
        for (uint e = 0u; e < p.n_expert; ++e) {
            off[e] = o;
            const uint c = cnt[e];
            for (uint s = 0u; s < c; s += p.bn) {
                G[1u + 3u * nt] = e;
                G[2u + 3u * nt] = o + s;
                G[3u + 3u * nt] = min(p.bn, c - s);
                ++nt;
            }
            o += c;
        }
        G[0] = nt;
    }
    barrier();
    for (uint i = tid; i < n; i += 256u) {
        const uint e = expert_of(i);
        G[p.entries_off + off[e] + atomicAdd(fill[e], 1u)] = i;
    }
}
