#version 450
// bench_gpu --grid (not used by decode): a chain of dependent matrix-vector products, either one
// dispatch per product with a pipeline barrier between (as decode runs its layers) or all of them in
// one dispatch whose workgroups wait for each other between products (a grid barrier: an atomic count
// polled with atomics; the workgroups must all be resident, so the host sizes the grid to the SMs).
// The same arithmetic either way, so the difference is what a dispatch boundary costs beyond a wait
// inside one dispatch. F16 weights: a lane takes 8 halves (one uvec4) per 256 columns.
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : enable
layout(local_size_x = GC_THREADS) in;
layout(push_constant) uniform PC { GridChainPush p; };
layout(binding = 0, std430) readonly buffer WBuf { uvec4 W4[]; };
layout(binding = 1, std430) coherent buffer XBuf { float X[]; };
layout(binding = 2, std430) coherent buffer CBuf { uint cnt[]; };

shared float xs[GC_NMAX];

#define U 4u  // uvec4 loads per lane in flight

float dot8(uvec4 w, uint c) {  // 8 halves against xs[c .. c + 7]
    const vec2 a = unpackHalf2x16(w.x), b = unpackHalf2x16(w.y), e = unpackHalf2x16(w.z), f = unpackHalf2x16(w.w);
    return a.x * xs[c] + a.y * xs[c + 1u] + b.x * xs[c + 2u] + b.y * xs[c + 3u] + e.x * xs[c + 4u] + e.y * xs[c + 5u] +
           f.x * xs[c + 6u] + f.y * xs[c + 7u];
}

// The k-th wait: every workgroup's writes before it are visible after it. A workgroup that polls
// 2^16 times in vain gives up and sets cnt[63], and every wait after that gives up at once: the grid
// was not all resident (H200: 4 workgroups per SM hung before this bound), and the bench reports it
// instead of hanging.
void grid_sync(uint k) {
    memoryBarrierBuffer();
    barrier();
    if (gl_LocalInvocationIndex == 0u) {
        atomicAdd(cnt[p.cnt_off], 1u);
        for (uint i = 0u; atomicAdd(cnt[p.cnt_off], 0u) < k * gl_NumWorkGroups.x; ++i)
            if (i == 1u << 16 || atomicAdd(cnt[63], 0u) != 0u) {
                atomicOr(cnt[63], 1u);
                break;
            }
    }
    barrier();
    memoryBarrierBuffer();
}

void main() {
    const uint tid = gl_LocalInvocationIndex, lane = gl_SubgroupInvocationID % 32u;
    const uint team = gl_WorkGroupID.x * (GC_THREADS / 32u) + tid / 32u, teams = gl_NumWorkGroups.x * (GC_THREADS / 32u);
    const uint n = p.n, per_row = n / 8u;  // uvec4s per row
    uvec4 pre[U];  // GC_PREFETCH: the first loads of this team's first row of the next stage
    bool have_pre = false;
    for (uint si = 0u; si < p.n_stages; ++si) {
        const uint s = p.s0 + si;
        for (uint i = tid; i < n; i += GC_THREADS) xs[i] = X[s * n + i];
        barrier();
        for (uint r = team; r < n; r += teams) {
            const uint wo = s * p.w_stride + r * per_row;
            float acc = 0.0;
            for (uint k0 = 0u; k0 < per_row; k0 += 32u * U) {
                uvec4 w[U];
                [[unroll]] for (uint u = 0u; u < U; ++u) {
                    const uint k = min(k0 + 32u * u + lane, per_row - 1u);
                    w[u] = have_pre && k0 == 0u ? pre[u] : W4[wo + k];
                }
                [[unroll]] for (uint u = 0u; u < U; ++u)
                    if (k0 + 32u * u + lane < per_row) acc += dot8(w[u], 8u * (k0 + 32u * u + lane));
            }
            have_pre = false;
            acc = subgroupAdd(acc);  // subgroups of 32 (NVIDIA; the bench checks)
            if (lane == 0u) X[(s + 1u) * n + r] = acc;
        }
        if (si + 1u == p.n_stages) break;
        if ((p.flags & GC_PREFETCH) != 0u && team < n) {
            const uint wo = (s + 1u) * p.w_stride + team * per_row;
            [[unroll]] for (uint u = 0u; u < U; ++u) pre[u] = W4[wo + min(32u * u + lane, per_row - 1u)];
            have_pre = true;
        }
        if ((p.flags & GC_GRID) != 0u) grid_sync(si + 1u);
        barrier();  // xs is reloaded
    }
}
