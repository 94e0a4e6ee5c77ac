// AVX2 dots (and dot4) for the grid types IQ3_XXS / IQ3_S / IQ1_S / IQ1_M against the int8 activation
// blocks of 256. Each group of 32 weights is gathered from its grid entries into one register (one
// byte a weight), then multiplied as Q8_0's are: maddubs of the magnitudes (u8) with the activations
// carrying the weights' signs, madd by the group's odd scale (i16) into i32 sums. IQ1_M's weights
// enter as 8 * (grid + delta), as in iq1_ref.cpp; IQ1_S's delta (one per 32) meets the activations'
// sums of 16 instead. The integer sums per super-block equal the scalar ones; only the float
// combination order differs. AVX-512 CPUs take these too (dot_avx512.cpp has none of its own).
// One thread, 768 x 2048 in cache, against llama.cpp v0.5.0's haswell vec_dot (same machine, same
// rows): IQ3_XXS 151 vs 144 us, IQ3_S 172 vs 172, IQ1_S 90 vs 99, IQ1_M 140 vs 101 (Q2_K 41 vs 35).
#include <immintrin.h>

#include <array>
#include <cstring>
#include <type_traits>

#include "engine/tensor/blocks.h"
#include "engine/tensor/iq_grids.h"
#include "engine/tensor/kernels_iq13.h"

namespace sluice::detail {

using namespace blocks;

namespace {

#define FOR_COL SLUICE_FOR_COL

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// The weights stream from RAM: ask for the super-block 2 KiB ahead (as dot_avx2.cpp's kAheadQuant).
template <class Block>
inline void prefetch(const Block* p) {
    for (size_t o = 0; o < sizeof(Block); o += 64) _mm_prefetch(reinterpret_cast<const char*>(p) + 2048 + o, _MM_HINT_T0);
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 32 sign bits (bit e: weight e negative) -> 32 bytes of -1 / +1, for sign_epi8.
inline __m256i signs_from_bits(uint32_t bits) {
    const __m256i spread = _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
    const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
    const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)), spread), bit);
    return _mm256_or_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(1));
}

// A group of 32 weights as the kernel multiplies it: magnitudes (u8), signs (a byte with the weight's
// sign; 0 zeroes the product) and the group's scale in each i16 (or one scale per 128-bit half).
struct Group {
    __m256i mag, sign, scale;
};

// out[c] = k * sum_b d(b) * d_a * sum_g madd(maddubs(mag, sign(q_a, sign)), scale), a super-block's
// integer sums kept in i32 lanes and turned to float once. d(b) is called before the groups of b;
// bias(b, a), where given, adds a per-super-block term of i32 lanes (IQ1_S's deltas from the sums).
struct NoBias {};
template <int N, class D, class G, class B = NoBias>
inline void dot_grid(const void* const* acts, int64_t n, float k, float* out, D d, G group, B bias = {}) {
    ActQ8x256 a[N];
    FOR_COL(c) a[c] = act_q8x256(const_cast<void*>(acts[c]), n);
    __m256 acc[N];
    FOR_COL(c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        const float db = d(b);
        __m256i isum[N];
        if constexpr (std::is_same_v<B, NoBias>) {
            FOR_COL(c) isum[c] = _mm256_setzero_si256();
        } else {
            FOR_COL(c) isum[c] = bias(b, a[c]);
        }
#pragma GCC unroll 2
        for (int g = 0; g < QKK / 32; ++g) {
            const Group w = group(b, g);
            FOR_COL(c) {
                const __m256i q = _mm256_sign_epi8(load256(a[c].qs + b * QKK + 32 * g), w.sign);
                isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(_mm256_maddubs_epi16(w.mag, q), w.scale));
                SLUICE_KEEP(isum[c]);
            }
        }
        FOR_COL(c) acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(db * a[c].d[b]), acc[c]);
    }
    FOR_COL(c) out[c] = k * hsum(acc[c]);
}

// kIqSigns as bytes for sign_epi8: byte j of entry i is -1 where bit j of kIqSigns[i] is set, else 1.
constexpr std::array<uint64_t, 128> kSignBytes = [] {
    std::array<uint64_t, 128> t{};
    for (int i = 0; i < 128; ++i)
        for (int j = 0; j < 8; ++j) t[size_t(i)] |= uint64_t((kIqSigns[size_t(i)] >> j) & 1 ? 0xFF : 0x01) << 8 * j;
    return t;
}();

// Grid values 4..62 (maddubs pairs <= 2 * 62 * 127); 7-bit sign indices, kIqSigns adds the parity.
template <int N>
void dot_iq3_xxs(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const IQ3_XXS*>(row);
    dot_grid<N>(acts, n, 0.25f, out, [&](int64_t b) {
        prefetch(w + b);
        return _cvtsh_ss(w[b].d);
    }, [&](int64_t b, int g) {
        const uint8_t* q = w[b].qs + 8 * g;
        const uint32_t word = iq3xxs_word(w[b], g);
        const __m256i mag = _mm256_setr_epi32(
            int(kIq3xxsGrid[q[0]]), int(kIq3xxsGrid[q[1]]), int(kIq3xxsGrid[q[2]]), int(kIq3xxsGrid[q[3]]),
            int(kIq3xxsGrid[q[4]]), int(kIq3xxsGrid[q[5]]), int(kIq3xxsGrid[q[6]]), int(kIq3xxsGrid[q[7]]));
        const __m256i sign = _mm256_setr_epi64x(
            int64_t(kSignBytes[word & 127]), int64_t(kSignBytes[(word >> 7) & 127]),
            int64_t(kSignBytes[(word >> 14) & 127]), int64_t(kSignBytes[(word >> 21) & 127]));
        return Group{mag, sign, _mm256_set1_epi16(int16_t(2 * (word >> 28) + 1))};
    });
}

// The grid indices are assembled 4 at a time in the 16-bit lanes of a uint64 with pdep (BMI2, which
// the AVX2 files require): low 8 bits from qs's 4 bytes, the high bits spread from qh. Lane k: index k.
inline uint64_t low_bytes(const uint8_t* qs) {
    uint32_t q;
    std::memcpy(&q, qs, 4);
    return _pdep_u64(q, 0x00FF00FF00FF00FFull);
}
inline int lane(uint64_t v, int k) { return int((v >> 16 * k) & 0xFFFF); }

// 9-bit indices (the ninth in qh), grid values odd 1..15, all 32 signs stored.
template <int N>
void dot_iq3_s(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const IQ3_S*>(row);
    dot_grid<N>(acts, n, 1.f, out, [&](int64_t b) {
        prefetch(w + b);
        return _cvtsh_ss(w[b].d);
    }, [&](int64_t b, int g) {
        const unsigned h = w[b].qh[g];
        const uint64_t i0 = low_bytes(w[b].qs + 8 * g) | _pdep_u64(h, 0x0100010001000100ull);
        const uint64_t i1 = low_bytes(w[b].qs + 8 * g + 4) | _pdep_u64(h >> 4, 0x0100010001000100ull);
        auto e = [](uint64_t v, int k) { return int(kIq3sGrid[size_t(lane(v, k))]); };
        const __m256i mag = _mm256_setr_epi32(e(i0, 0), e(i0, 1), e(i0, 2), e(i0, 3), e(i1, 0), e(i1, 1), e(i1, 2), e(i1, 3));
        uint32_t bits;
        std::memcpy(&bits, w[b].signs + 4 * g, 4);
        const int sc = 2 * ((w[b].scales[g / 2] >> 4 * (g % 2)) & 0xF) + 1;
        return Group{mag, signs_from_bits(bits), _mm256_set1_epi16(int16_t(sc))};
    });
}

// IQ1_M: 4 entries (indices in the lanes of idx; 8 weights each, values -1/0/1) and their deltas
// (bit k of neg: entry k's is negative) as 8 * (grid + delta) in {-9, -7, -1, 1, 7, 9}: magnitudes
// and the values as signs. The delta bits are random: vector compares, not branches.
inline void iq1_weights(uint64_t idx, int neg, __m256i& mag, __m256i& sign) {
    auto e = [&](int k) { return int64_t(kIq1sGrid[size_t(lane(idx, k))]); };
    const __m256i g = _mm256_setr_epi64x(e(0), e(1), e(2), e(3));
    const __m256i bit = _mm256_and_si256(_mm256_set1_epi64x(neg), _mm256_setr_epi64x(1, 2, 4, 8));
    const __m256i delta = _mm256_or_si256(_mm256_cmpgt_epi64(bit, _mm256_setzero_si256()), _mm256_set1_epi8(1));
    sign = _mm256_add_epi8(_mm256_sign_epi8(_mm256_set1_epi8(8), g), delta);
    mag = _mm256_abs_epi8(sign);
}

// qh[g]: 4 x 3 high index bits, then the 3-bit scale and the delta's sign. The delta is the group's:
// 8 * grid meets the activations (maddubs of 8 with q_a carrying the grid's signs, zero where the
// grid is), and (2 sc + 1) * (+-1) the group's two activation sums of 16, once per super-block.
template <int N>
void dot_iq1_s(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const IQ1_S*>(row);
    __m256i coef;  // i16 pairs: +-(2 sc_g + 1) for both sums of 16 of group g
    dot_grid<N>(acts, n, 0.125f, out, [&](int64_t b) {
        prefetch(w + b);
        const __m128i qh = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qh));
        const __m128i sc = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(qh, 12), _mm_set1_epi16(7)), 1),
                                        _mm_set1_epi16(1));
        const __m128i neg = _mm_srai_epi16(qh, 15);
        const __m256i c32 = _mm256_cvtepu16_epi32(_mm_sub_epi16(_mm_xor_si128(sc, neg), neg));
        coef = _mm256_or_si256(c32, _mm256_slli_epi32(c32, 16));
        return _cvtsh_ss(w[b].d);
    }, [&](int64_t b, int g) {
        const unsigned h = w[b].qh[g];
        const uint64_t idx = low_bytes(w[b].qs + 4 * g) | _pdep_u64(h, 0x0700070007000700ull);
        auto e = [&](int k) { return int64_t(kIq1sGrid[size_t(lane(idx, k))]); };
        return Group{_mm256_set1_epi8(8), _mm256_setr_epi64x(e(0), e(1), e(2), e(3)),
                     _mm256_set1_epi16(int16_t(2 * ((h >> 12) & 7) + 1))};
    }, [&](int64_t b, const ActQ8x256& a) { return _mm256_madd_epi16(load256(a.bsums + 16 * b), coef); });
}

// qh[2g], qh[2g + 1]: a nibble per entry (3 high index bits, the delta's sign). Group g's two halves
// of 16 have their own scales: one per 128-bit lane of the madd multiplier.
template <int N>
void dot_iq1_m(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const IQ1_M*>(row);
    uint16_t sc[4];
    // bytes 0-1 of the 32-bit word to every i16 of the low 128-bit lane, bytes 2-3 to the high one
    const __m256i halves = _mm256_setr_epi64x(0x0100010001000100, 0x0100010001000100, 0x0302030203020302,
                                              0x0302030203020302);
    dot_grid<N>(acts, n, 0.125f, out, [&](int64_t b) {
        prefetch(w + b);
        iq1m_words(w[b], sc);
        return _cvtsh_ss(iq1m_d(sc));
    }, [&](int64_t b, int g) {
        uint16_t h;
        std::memcpy(&h, w[b].qh + 2 * g, 2);
        Group r;
        iq1_weights(low_bytes(w[b].qs + 4 * g) | _pdep_u64(h & 0x7777u, 0x0F000F000F000F00ull), int(_pext_u32(h, 0x8888)),
                    r.mag, r.sign);
        // the two 3-bit scales to bits 0 and 16, then 2 s + 1 in both halves at once
        const uint32_t two = uint32_t(_pdep_u32(unsigned(sc[g / 2] >> 6 * (g % 2)), 0x00070007u)) * 2 + 0x00010001u;
        r.scale = _mm256_shuffle_epi8(_mm256_set1_epi32(int(two)), halves);
        return r;
    });
}

}  // namespace

DotFn avx2_iq13_dot(GgmlType t) {
    switch (t) {
        case GgmlType::IQ3_XXS: return dot1<dot_iq3_xxs<1>>;
        case GgmlType::IQ3_S: return dot1<dot_iq3_s<1>>;
        case GgmlType::IQ1_S: return dot1<dot_iq1_s<1>>;
        case GgmlType::IQ1_M: return dot1<dot_iq1_m<1>>;
        default: return nullptr;
    }
}

Dot4Fn avx2_iq13_dot4(GgmlType t) {
    switch (t) {
        case GgmlType::IQ3_XXS: return dot_iq3_xxs<4>;
        case GgmlType::IQ3_S: return dot_iq3_s<4>;
        case GgmlType::IQ1_S: return dot_iq1_s<4>;
        case GgmlType::IQ1_M: return dot_iq1_m<4>;
        default: return nullptr;
    }
}

}  // namespace sluice::detail
