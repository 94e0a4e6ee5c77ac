// Test-only: stands in for <immintrin.h> when engine/tensor/*_avx512.cpp are built for
// test_kernels_avx512_emu. The real header comes first (AVX2 stays native), then SIMDe (libsimde-dev)
// supplies AVX-512 intrinsics in portable code, so the AVX-512 kernels run on CPUs without AVX-512.
// The few intrinsics SIMDe 0.7.4 lacks are written out element by element below.
#pragma once
#include_next <immintrin.h>
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
static inline simde__m512i emu_zext(simde__m256i a) { return simde_mm512_inserti64x4(simde_mm512_setzero_si512(), a, 0); }
static inline simde__m512 emu_cvtepi32_ps(simde__m512i a) {
    simde__m512i_private p = simde__m512i_to_private(a); simde__m512_private r;
    for (int i = 0; i < 16; ++i) r.f32[i] = (float)p.i32[i];
    return simde__m512_from_private(r);
}
static inline simde__m512i emu_cvtepi8_epi32(simde__m128i a) {
    simde__m128i_private p = simde__m128i_to_private(a); simde__m512i_private r;
    for (int i = 0; i < 16; ++i) r.i32[i] = p.i8[i];
    return simde__m512i_from_private(r);
}
#define _mm512_zextsi256_si512 emu_zext
#define _mm512_cvtepi32_ps emu_cvtepi32_ps
#define _mm512_cvtepi8_epi32 emu_cvtepi8_epi32
static inline simde__m512 emu_maskz_loadu_ps(simde__mmask16 m, const void* p) {
    simde__m512_private r; const float* f = (const float*)p;
    for (int i = 0; i < 16; ++i) r.f32[i] = ((m >> i) & 1) ? f[i] : 0.f;
    return simde__m512_from_private(r);
}
static inline simde__m256i emu_maskz_loadu_epi16(simde__mmask16 m, const void* p) {
    simde__m256i_private r; const int16_t* s = (const int16_t*)p;
    for (int i = 0; i < 16; ++i) r.i16[i] = ((m >> i) & 1) ? s[i] : 0;
    return simde__m256i_from_private(r);
}
static inline simde__m512 emu_cvtph_ps(simde__m256i a) {
    simde__m512_private r; simde__m256i_private p = simde__m256i_to_private(a);
    for (int i = 0; i < 16; ++i) r.f32[i] = _cvtsh_ss((unsigned short)p.u16[i]);
    return simde__m512_from_private(r);
}
static inline void emu_mask_storeu_ps(void* q, simde__mmask16 m, simde__m512 a) {
    simde__m512_private p = simde__m512_to_private(a); float* f = (float*)q;
    for (int i = 0; i < 16; ++i) if ((m >> i) & 1) f[i] = p.f32[i];
}
#define _mm512_maskz_loadu_ps emu_maskz_loadu_ps
#define _mm256_maskz_loadu_epi16 emu_maskz_loadu_epi16
#define _mm512_cvtph_ps emu_cvtph_ps
#define _mm512_mask_storeu_ps emu_mask_storeu_ps
static inline simde__m512i emu_cvtepu16_epi32(simde__m256i a) {
    simde__m256i_private p = simde__m256i_to_private(a); simde__m512i_private r;
    for (int i = 0; i < 16; ++i) r.i32[i] = p.u16[i];
    return simde__m512i_from_private(r);
}
#define _mm512_cvtepu16_epi32 emu_cvtepu16_epi32
static inline float emu_reduce_add_ps(simde__m512 a) {
    simde__m512_private p = simde__m512_to_private(a); float s = 0;
    for (int i = 0; i < 16; ++i) s += p.f32[i];
    return s;
}
#define _mm512_reduce_add_ps emu_reduce_add_ps
