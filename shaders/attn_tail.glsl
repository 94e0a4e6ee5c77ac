// MV_ATTN (shared.h): a q head's decode attention in the tail of the q/k/v product's workgroup that
// completes its rows, for the _at variants of matvec.comp (ATTN_TAIL, no k-split; the includer defines
// WG_ROWS, MV_WG, wg_sum, wg_max, red, the y, count, mirror and step bindings). The arithmetic is
// attn_split.comp's fused variant at one split (norm + RoPE of q and k, online softmax over one chunk),
// with MV_WG invocations for one head.
//
// Why: at short contexts the attention dispatch is latency (a few memory round trips) plus the
// barrier, launch and ramp on each side of it; here the heads of the first kv groups run while the
// product still streams the later groups' rows, and only the last head's attention is left after it.
layout(binding = 8, std430) writeonly buffer AtOut { float AO[]; };
layout(binding = 9, std430) buffer AtK { float AK[]; };
layout(binding = 9, std430) buffer AtK4 { vec4 AK4[]; };
layout(binding = 10, std430) buffer AtV { float AV[]; };
layout(binding = 10, std430) buffer AtV4 { vec4 AV4[]; };
layout(binding = 11, std430) readonly buffer AtNorm { float AN[]; };

shared float at_q[ATTN_DMAX], at_k[ATTN_DMAX];  // the head's q and this position's k, normed and roped
shared float at_sc[ATTN_TAIL_MAX];              // scores, then exp(score - max)
shared float at_o[MV_WG * 4u];                  // the row groups' partial outputs
shared uint at_first, at_mask;                  // the heads this workgroup completed: first + set bits

#define AT_PER (ATTN_DMAX / MV_WG)  // elements of a head per invocation at most
#define AT_CL 8u                    // invocations per K row in the scores (128 bytes of a row per load)
#define AT_NCL (MV_WG / AT_CL)
#define AT_KU 4u                    // K rows per cluster per round
#define AT_VU 16u                   // V rows per row group per round

uint at_hd() { return p.topk_k & 0xFFFFu; }
uint at_hdv() { return p.topk_k >> 16; }
uint at_kv() { return p.topk_ids_off & 0xFFFFu; }
uint at_group() { return p.topk_ids_off >> 16; }

// The first of the rows that workgroup row r of the product computes: the rows of kv group g come
// as [its k head, its v head, its q heads] (WG_ROWS divides head_dim and head_dim_v: host-checked).
uint attn_row(uint r) {
    const uint hd = at_hd(), hdv = at_hdv(), kv = at_kv(), G = at_group(), qd = G * kv * hd;
    const uint per = hd + hdv + G * hd, g = r / per, j = r - g * per;
    if (j < hd) return qd + g * hd + j;
    if (j < hd + hdv) return qd + kv * hd + g * hdv + j - hd;
    return g * G * hd + j - hd - hdv;
}

// Element d of the q (k: false) head or of this position's k (true), / rms * norm weight, then NeoX
// RoPE with the step's angles (attn_split.comp norm_rope's arithmetic).
float at_x(bool k, uint i) { return k ? at_k[i] : at_q[i]; }
float at_rope(bool k, uint d, float rs, uint wo) {
    const uint half_rot = p.topk_w_off / 2u;
    const float a = at_x(k, d) * rs * AN[wo + d];
    if (d < half_rot) {
        const vec2 c = rope_cs[d];
        return a * c.x - at_x(k, d + half_rot) * rs * AN[wo + d + half_rot] * c.y;
    }
    if (d < p.topk_w_off) {
        const vec2 c = rope_cs[d - half_rot];
        return at_x(k, d - half_rot) * rs * AN[wo + d - half_rot] * c.y + a * c.x;
    }
    return a;
}

vec4 at_qvec(uint d4) { return vec4(at_q[4u * d4], at_q[4u * d4 + 1u], at_q[4u * d4 + 2u], at_q[4u * d4 + 3u]); }
vec4 at_kvec(uint d4) { return vec4(at_k[4u * d4], at_k[4u * d4 + 1u], at_k[4u * d4 + 2u], at_k[4u * d4 + 3u]); }

// Head h's attention over positions 0 .. step.n_kv - 1 (the last one's k and v from the product).
// Uniform control flow.
void attn_head(uint h) {
    const uint tid = gl_LocalInvocationIndex;
    const uint hd = at_hd(), hdv = at_hdv(), kv = at_kv(), G = at_group(), g = h / G;
    const uint qd = G * kv * hd, kd = kv * hd, vd = kv * hdv;
    const uint n = step.n_kv, pos = n - 1u;
    const float eps = uintBitsToFloat(p.y_pos_stride);
    const uint qsrc = p.y_off + h * hd, ksrc = p.y_off + qd + g * hd, vsrc = p.y_off + qd + kd + g * hdv;

    float ssq = 0.0, ssk = 0.0;
    for (uint i = tid; i < hd; i += MV_WG) {
        const float a = Y[qsrc + i], b = Y[ksrc + i];
        at_q[i] = a;
        at_k[i] = b;
        ssq += a * a;
        ssk += b * b;
    }
    const float rq = inversesqrt(wg_sum(ssq) / float(hd) + eps);  // wg_sum's barriers publish at_q, at_k
    const float rk = inversesqrt(wg_sum(ssk) / float(hd) + eps);
    float yq[AT_PER], yk[AT_PER];
    [[unroll]] for (uint r = 0u; r < AT_PER; ++r) {
        const uint d = min(tid + r * MV_WG, hd - 1u);
        yq[r] = at_rope(false, d, rq, p.w2_off);
        yk[r] = at_rope(true, d, rk, p.ids_off);
    }
    barrier();
    [[unroll]] for (uint r = 0u; r < AT_PER; ++r) {
        const uint d = tid + r * MV_WG;
        if (d >= hd) continue;
        at_q[d] = yq[r];
        at_k[d] = yk[r];
    }
    barrier();
    if (h % G == 0u) {  // the group's first head writes this position's cache rows (no head reads them)
        for (uint i = tid; i < hd; i += MV_WG) AK[p.sum_w_off + pos * kd + g * hd + i] = at_k[i];
        for (uint i = tid; i < hdv; i += MV_WG) AV[p.qb_q_off + pos * vd + g * hdv + i] = Y[vsrc + i];
    }

    // Scores: cluster cid of AT_CL invocations takes positions tb + u * AT_NCL + cid, its invocation cl
    // the vec4s cl + AT_CL * i of their K rows; rows past the end read the last one (no branch around
    // the loads), and this position's k comes from at_k (its cache row may be being written).
    const uint sgc = gl_SubgroupSize / AT_CL;
    const uint cid = gl_SubgroupID * sgc + gl_SubgroupInvocationID / AT_CL, cl = gl_SubgroupInvocationID % AT_CL;
    const uint hd4 = hd / 4u, ni = (hd4 + AT_CL - 1u) / AT_CL, kbase = (p.sum_w_off + g * hd) / 4u;
    const float scale = 1.0 / sqrt(float(hd));
    for (uint tb = 0u; tb < n; tb += AT_NCL * AT_KU) {  // uniform
        uint row[AT_KU];
        float acc[AT_KU];
        [[unroll]] for (uint u = 0u; u < AT_KU; ++u) {
            row[u] = kbase + min(tb + u * AT_NCL + cid, pos) * (kd / 4u);
            acc[u] = 0.0;
        }
        for (uint i0 = 0u; i0 < ni; i0 += 4u) {
            vec4 kr[4][AT_KU];
            [[unroll]] for (uint i = 0u; i < 4u; ++i) {
                const uint dc = min(cl + AT_CL * (i0 + i), hd4 - 1u);
                [[unroll]] for (uint u = 0u; u < AT_KU; ++u) kr[i][u] = AK4[row[u] + dc];
            }
            [[unroll]] for (uint i = 0u; i < 4u; ++i) {
                const uint d4 = cl + AT_CL * (i0 + i);
                const vec4 q = d4 < hd4 ? at_qvec(d4) : vec4(0.0);
                [[unroll]] for (uint u = 0u; u < AT_KU; ++u) acc[u] += dot(q, kr[i][u]);
            }
        }
        [[unroll]] for (uint u = 0u; u < AT_KU; ++u) {
            const uint t = tb + u * AT_NCL + cid;
            if (t == pos) {  // uniform in the cluster
                float dt = 0.0;
                for (uint d4 = cl; d4 < hd4; d4 += AT_CL) dt += dot(at_qvec(d4), at_kvec(d4));
                acc[u] = dt;
            }
            float v = acc[u];
            v += subgroupShuffleXor(v, 4u);
            v += subgroupShuffleXor(v, 2u);
            v += subgroupShuffleXor(v, 1u);
            if (t < n && cl == 0u) at_sc[t] = v * scale;
        }
    }
    barrier();
    float mx = -1.0 / 0.0;
    for (uint t = tid; t < n; t += MV_WG) mx = max(mx, at_sc[t]);
    mx = wg_max(mx);
    float l = 0.0;
    for (uint t = tid; t < n; t += MV_WG) {
        const float e = exp(at_sc[t] - mx);
        at_sc[t] = e;
        l += e;
    }
    l = wg_sum(l);  // its barriers publish at_sc

    // Weighted sum of V: rg row groups of hdv / 4 invocations (a vec4 of dims each) take every rg-th
    // position, AT_VU rows in flight together; this position's v from the product.
    const uint lpr = hdv / 4u, rg = MV_WG / lpr, vr = tid / lpr, vd4 = tid - vr * lpr;
    vec4 o = vec4(0.0);
    if (vr < rg) {
        const uint vbase = (p.qb_q_off + g * hdv) / 4u + vd4;
        for (uint tb = vr; tb < pos; tb += rg * AT_VU) {
            vec4 v[AT_VU];
            [[unroll]] for (uint u = 0u; u < AT_VU; ++u) v[u] = AV4[vbase + min(tb + u * rg, pos - 1u) * (vd / 4u)];
            [[unroll]] for (uint u = 0u; u < AT_VU; ++u)
                if (tb + u * rg < pos) o += at_sc[tb + u * rg] * v[u];
        }
        if (vr == 0u) {
            const uint r = vsrc + 4u * vd4;
            o += at_sc[pos] * vec4(Y[r], Y[r + 1u], Y[r + 2u], Y[r + 3u]);
        }
        const uint i = vr * hdv + 4u * vd4;
        at_o[i] = o.x;
        at_o[i + 1u] = o.y;
        at_o[i + 2u] = o.z;
        at_o[i + 3u] = o.w;
    }
    barrier();
    vec4 r = vec4(0.0);
    if (tid < lpr) {
        for (uint j = 0u; j < rg; ++j)
            r += vec4(at_o[j * hdv + 4u * tid], at_o[j * hdv + 4u * tid + 1u], at_o[j * hdv + 4u * tid + 2u],
                      at_o[j * hdv + 4u * tid + 3u]);
        r /= l;
        const uint oo = p.norm_y_off + h * hdv + 4u * tid;
        AO[oo] = r.x;
        AO[oo + 1u] = r.y;
        AO[oo + 2u] = r.z;
        AO[oo + 3u] = r.w;
    }
    if ((p.flags & MV_ATTN_Q8) != 0u) {  // uniform; invocations past the head quantize zeros
        vec2 ds;
        const uint q = q8_quantize(r, ds);
        if (tid < lpr) {
            const uint i = (p.norm_y_off + h * hdv) / 4u + tid;
            Hq[i] = q;
            if ((tid & 7u) == 0u) Hs2[p.norm_q_soff + i / 8u] = ds;
        }
    }
    if (tid == 0u) hn_count[p.norm_count_off + h] = 0u;  // for the next layer and token
    barrier();  // shared memory free for the next head
}

// After this workgroup's rows (the first: wrow0) are written: count them for the heads that read
// them, and run the attention of each head they complete.
void attn_tails(uint wrow0) {
    const uint tid = gl_LocalInvocationIndex;
    const uint hd = at_hd(), hdv = at_hdv(), kv = at_kv(), G = at_group(), qd = G * kv * hd, kd = kv * hd;
    memoryBarrierBuffer();  // this workgroup's y before its counts
    barrier();
    if (tid == 0u) {
        uint first, heads;
        if (wrow0 < qd) {
            first = wrow0 / hd;
            heads = 1u;
        } else {
            first = (wrow0 < qd + kd ? (wrow0 - qd) / hd : (wrow0 - qd - kd) / hdv) * G;
            heads = G;
        }
        uint mask = 0u;
        for (uint i = 0u; i < heads; ++i)
            if (atomicAdd(hn_count[p.norm_count_off + first + i], WG_ROWS) + WG_ROWS == 2u * hd + hdv) mask |= 1u << i;
        at_first = first;
        at_mask = mask;
    }
    barrier();
    uint mask = at_mask;  // uniform
    if (mask == 0u) return;
    memoryBarrierBuffer();  // the other workgroups' rows after their counts
    const uint first = at_first;
    while (mask != 0u) {
        const uint i = findLSB(mask);
        mask &= mask - 1u;
        attn_head(first + i);
    }
}
