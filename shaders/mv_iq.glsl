// The grid types' matvecs (mv_types.glsl's interface; iq_grid.glsl decodes).

#if defined(XQ8)
// Integer dots over x's int8 mirror (blocks of 32): a step is 32 sub-blocks of 32, a lane each (as
// Q4_0's): its 4 groups as int8 (iq_group_i8: grid bytes with their signs) against the block's 32 int8
// of x, 8 OpSDot in two sums of 16 (the types with a scale per 16), times d_x and the scales.
#include "mv_x32.glsl"
struct WS {
    uvec4 lo, hi;  // int8 of elements 0-15 (groups 0, 1) and 16-31 (groups 2, 3)
    vec2 sc;       // their scales (0 past the row's end)
};
WS load_w(uint wrow, uint s) {
    WS w;
    const uint sub0 = x32_block(s), sub = min(sub0, (p.cols >> 5) - 1u);
    const uint b = wrow + IQ_UNITS * (sub >> 3), g = 4u * (sub & 7u);
    const vec2 sc = iq_sub_i8(b, g, w.lo, w.hi);
    w.sc = 32u * sub0 < p.cols ? sc : vec2(0.0);
    return w;
}
float dot_w(WS w, XS x) {
    int i0 = 0, i1 = 0;
    [[unroll]] for (uint c = 0u; c < 4u; ++c) {
        i0 += sdot4(w.lo[c], x.lo[c], 0);
        i1 += sdot4(w.hi[c], x.hi[c], 0);
    }
    return x.ds.x * (w.sc.x * float(i0) + w.sc.y * float(i1));
}

#else
// Float: a step is 16 sub-blocks of 32, two lanes each: lane l takes half h = l & 1 of sub-block
// 16s + (l >> 1), its groups 2h and 2h + 1 (16 elements, four vec4 of x: two lanes read a sub-block's
// whole line of x).
#define MV_STEP 512u
struct XS {
    vec4 v[4];
};
uint iq_sub(uint s) { return 16u * s + (lane >> 1); }
XS load_x(uint xo, uint s) {
    XS x;
    const bool inside = 32u * iq_sub(s) < p.cols;
    const uint i = (xo + 32u * iq_sub(s) + 16u * (lane & 1u)) >> 2;
    [[unroll]] for (uint k = 0u; k < 4u; ++k) x.v[k] = inside ? X4[i + k] : vec4(0.0);
    return x;
}
float row_dot(uint wrow, uint s, XS x) {
    const uint sub = iq_sub(s);
    if (32u * sub >= p.cols) return 0.0;
    const uint b = wrow + IQ_UNITS * (sub >> 3), g = 4u * (sub & 7u) + 2u * (lane & 1u);
    vec4 lo0, hi0, lo1, hi1;
    const float s0 = iq_group(b, g, lo0, hi0), s1 = iq_group(b, g + 1u, lo1, hi1);
    return s0 * (dot(lo0, x.v[0]) + dot(hi0, x.v[1])) + s1 * (dot(lo1, x.v[2]) + dot(hi1, x.v[3]));
}
#endif
