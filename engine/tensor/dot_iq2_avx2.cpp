// AVX2 dots of IQ2_XXS / IQ2_XS / IQ2_S against the int8 activation blocks of 256. Per group of 32: the
// four pieces' grid entries (unsigned magnitudes 8..43) as one vector, their signs applied to the
// activations (sign_epi8 by +1 / -1 bytes), maddubs into i16 pairs (|.| <= 2 * 43 * 127, no saturation),
// madd by the scales 2 ls + 1 into i32. The integer sum of each super-block equals the scalar one
// (iq2_ref.cpp); only the float combination order differs. As dot_avx2.cpp, each kernel is a template
// over N columns that run the instruction sequence of N = 1, so dot4 is bit-identical to four dots.
#include <immintrin.h>

#include <array>
#include <cstring>

#include "engine/tensor/iq2.h"

namespace sluice::detail {

using namespace blocks;

namespace {

#define FOR_COL SLUICE_FOR_COL

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// The +1 / -1 bytes of a 7-bit sign index (byte j is -1 where bit j of kIqSigns' byte is set), the
// operand of sign_epi8: one load per piece for IQ2_XXS / IQ2_XS (measured faster than testing bits, as
// IQ2_S does: 112 vs 133 us for IQ2_XXS's 768x2048 matvec).
constexpr std::array<uint64_t, 128> kSignBytes = [] {
    std::array<uint64_t, 128> t{};
    for (int i = 0; i < 128; ++i)
        for (int j = 0; j < 8; ++j) t[size_t(i)] |= uint64_t((kIqSigns[size_t(i)] >> j) & 1 ? 0xFF : 0x01) << (8 * j);
    return t;
}();

// Four grid entries (or sign words) as one vector, pieces in order: four loads and inserts (a vpgatherqq
// measured slower: 176 vs 112 us).
inline __m256i set4(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    return _mm256_set_epi64x(int64_t(d), int64_t(c), int64_t(b), int64_t(a));
}

// The scale of each i16 pair, 2 ls + 1: values 0-15 in the low 128-bit lane, 16-31 in the high one.
inline __m256i scales(int ls_lo, int ls_hi) {
    return _mm256_set_m128i(_mm_set1_epi16(int16_t(2 * ls_hi + 1)), _mm_set1_epi16(int16_t(2 * ls_lo + 1)));
}

// Group g of a block: magnitudes (byte 8l + j: value j of piece l), +1 / -1 per value, pair scales.
inline void group_vectors(const IQ2_XXS& b, int g, __m256i& mag, __m256i& sgn, __m256i& sc) {
    uint32_t aux[2];  // grid indices, then sign indices and ls
    std::memcpy(aux, b.qs + 4 * g, sizeof aux);
    mag = set4(kIq2xxsGrid[aux[0] & 255], kIq2xxsGrid[(aux[0] >> 8) & 255], kIq2xxsGrid[(aux[0] >> 16) & 255],
               kIq2xxsGrid[aux[0] >> 24]);
    sgn = set4(kSignBytes[aux[1] & 127], kSignBytes[(aux[1] >> 7) & 127], kSignBytes[(aux[1] >> 14) & 127],
               kSignBytes[(aux[1] >> 21) & 127]);
    sc = scales(int(aux[1] >> 28), int(aux[1] >> 28));
}

inline void group_vectors(const IQ2_XS& b, int g, __m256i& mag, __m256i& sgn, __m256i& sc) {
    const uint16_t* q = b.qs + 4 * g;
    mag = set4(kIq2xsGrid[q[0] & 511], kIq2xsGrid[q[1] & 511], kIq2xsGrid[q[2] & 511], kIq2xsGrid[q[3] & 511]);
    sgn = set4(kSignBytes[q[0] >> 9], kSignBytes[q[1] >> 9], kSignBytes[q[2] >> 9], kSignBytes[q[3] >> 9]);
    sc = scales(b.scales[g] & 15, b.scales[g] >> 4);
}

// IQ2_S's 8 stored signs: sign byte l broadcast over bytes 8l .. 8l+7, bit j tested in byte 8l + j
// (shuffle_epi8 indexes within each 128-bit lane: the broadcast puts all four bytes in both).
inline void group_vectors(const IQ2_S& b, int g, __m256i& mag, __m256i& sgn, __m256i& sc) {
    const int qh = b.qh[g];
    const uint8_t* q = b.qs + 4 * g;
    mag = set4(kIq2sGrid[q[0] | (qh << 8 & 0x300)], kIq2sGrid[q[1] | (qh << 6 & 0x300)],
               kIq2sGrid[q[2] | (qh << 4 & 0x300)], kIq2sGrid[q[3] | (qh << 2 & 0x300)]);
    int32_t s4;
    std::memcpy(&s4, b.qs + 32 + 4 * g, 4);
    const __m256i spread = _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
    const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
    const __m256i s = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(s4), spread), bit);
    sgn = _mm256_or_si256(_mm256_cmpeq_epi8(s, bit), _mm256_set1_epi8(1));
    sc = scales(b.scales[g] & 15, b.scales[g] >> 4);
}

// Per super-block: i32 lanes summed over its 8 groups (exact), then d * d_a times their floats; the
// 1/8 of (2 ls + 1) / 8 once at the end.
template <class B, int N>
void dot_iq2(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const B*>(row);
    ActQ8x256 a[N];
    __m256 acc[N];
    FOR_COL(c) {
        a[c] = act_q8x256(const_cast<void*>(acts[c]), n);
        acc[c] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < n / QKK; ++b) {
        // Rows stream from RAM: ~2 KiB ahead (dot_avx2.cpp's measured distance), every line of a block.
        const char* ahead = reinterpret_cast<const char*>(w + b) + 2048;
        _mm_prefetch(ahead, _MM_HINT_T0);
        _mm_prefetch(ahead + sizeof(B) - 1, _MM_HINT_T0);
        __m256i isum[N];
        FOR_COL(c) isum[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int g = 0; g < QKK / 32; ++g) {
            __m256i mag, sgn, scale;
            group_vectors(w[b], g, mag, sgn, scale);
            FOR_COL(c) {
                const __m256i q = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                                       a[c].qs + b * QKK + 32 * g)),
                                                   sgn);
                isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(_mm256_maddubs_epi16(mag, q), scale));
                SLUICE_KEEP(isum[c]);
            }
        }
        const float d = _cvtsh_ss(w[b].d);
        FOR_COL(c) acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(d * a[c].d[b]), acc[c]);
    }
    FOR_COL(c) out[c] = 0.125f * hsum(acc[c]);
}

}  // namespace

DotFn avx2_dot_iq2(GgmlType t) {
    switch (t) {
        case GgmlType::IQ2_XXS: return dot1<dot_iq2<IQ2_XXS, 1>>;
        case GgmlType::IQ2_XS: return dot1<dot_iq2<IQ2_XS, 1>>;
        case GgmlType::IQ2_S: return dot1<dot_iq2<IQ2_S, 1>>;
        default: return nullptr;
    }
}

Dot4Fn avx2_dot4_iq2(GgmlType t) {
    switch (t) {
        case GgmlType::IQ2_XXS: return dot_iq2<IQ2_XXS, 4>;
        case GgmlType::IQ2_XS: return dot_iq2<IQ2_XS, 4>;
        case GgmlType::IQ2_S: return dot_iq2<IQ2_S, 4>;
        default: return nullptr;
    }
}

}  // namespace sluice::detail
