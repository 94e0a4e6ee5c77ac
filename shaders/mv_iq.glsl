// The grid types' float matvec (mv_types.glsl's interface; iq_grid.glsl decodes). A step is 16
// sub-blocks of 32, two lanes each: lane l takes half h = l & 1 of sub-block 16s + (l >> 1), its
// groups 2h and 2h + 1 (16 elements, four vec4 of x: two lanes read a sub-block's whole line of x).
#define MV_STEP 512u
#define MV_TABLE
#define mv_table_init() iq_grid_init(MV_WG)  // a macro: MV_WG is defined after this file
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
