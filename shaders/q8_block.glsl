// The int8 mirror's blocks (shared.h QuantQ8Push) computed by the invocations that hold them: 8
// consecutive invocations (the first's index a multiple of 8) hold a block of 32 floats, a vec4 each;
// max |h| and sum q over the block come through shuffles (subgroups of 8 or more). d = max / 127,
// q = round(h / d) ties away from zero (the CPU's Q8 rounding), and the block's (d, d * sum q).
// Call in uniform control flow; the includer enables GL_KHR_shader_subgroup_shuffle.
uint q8_quantize(vec4 h, out vec2 ds) {
    float a = max(max(abs(h.x), abs(h.y)), max(abs(h.z), abs(h.w)));
    a = max(a, subgroupShuffleXor(a, 1u));
    a = max(a, subgroupShuffleXor(a, 2u));
    a = max(a, subgroupShuffleXor(a, 4u));
    const vec4 s = h * (a > 0.0 ? 127.0 / a : 0.0), q = sign(s) * floor(abs(s) + 0.5);
    float qs = (q.x + q.y) + (q.z + q.w);  // integers: exact
    qs += subgroupShuffleXor(qs, 1u);
    qs += subgroupShuffleXor(qs, 2u);
    qs += subgroupShuffleXor(qs, 4u);
    ds = vec2(a / 127.0, a / 127.0 * qs);
    const ivec4 i = ivec4(q);
    return uint(i.x & 0xFF) | (uint(i.y & 0xFF) << 8) | (uint(i.z & 0xFF) << 16) | (uint(i.w & 0xFF) << 24);
}
