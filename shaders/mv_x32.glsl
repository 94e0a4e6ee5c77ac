// x's int8 mirror a block of 32 per lane (mv_types.glsl's interface), for the integer dots of the types
// whose lane takes one block or sub-block of 32 (Q4_0, Q5_0, Q5_1, IQ4_NL, IQ4_XS, the grid types): a
// step is 32 blocks, lane l taking block 32s + l and its 32 int8 of x.
#define MV_STEP 1024u
struct XS {
    uvec4 lo, hi;  // x's int8 of the block's elements 0-15 and 16-31
    vec2 ds;       // (d, d * sum q)
};
uint x32_block(uint s) { return 32u * s + lane; }
XS load_x(uint xo, uint s) {
    XS x;
    const uint e = xo + 32u * x32_block(s);
    const bool inside = 32u * x32_block(s) < p.cols;
    x.lo = inside ? XQ4[e >> 4] : uvec4(0u);
    x.hi = inside ? XQ4[(e >> 4) + 1u] : uvec4(0u);
    x.ds = inside ? XS2[p.xq_soff + (e >> 5)] : vec2(0.0);
    return x;
}
