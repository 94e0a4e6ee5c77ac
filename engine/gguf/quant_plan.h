// Which type each tensor gets when sluice writes a model (gen-model, quantize): the requested type for
// weight matrices, F32 for norms, the routers and the GatedDeltaNet conv kernel (as llama.cpp's
// quantizer does), and llama.cpp's fallback when a row length is not a multiple of the type's block
// (llama-quant.cpp tensor_type_fallback: deepseek2's attn_k_b rows of 128, V2-Lite's experts' 1408).
#pragma once
#include <cstdint>
#include <string>

#include "engine/tensor/types.h"

namespace sluice {

inline GgmlType plan_type(const std::string& name, const int64_t* ne, uint32_t n_dims, GgmlType want) {
    if (n_dims < 2 || name.find("_norm") != std::string::npos || name.find("ffn_gate_inp") != std::string::npos ||
        name.find("ssm_conv1d") != std::string::npos)
        return GgmlType::F32;
    if (ne[0] % type_info(want).block_size == 0) return want;
    GgmlType f = GgmlType::F16;  // a 32-block type that does not fit either
    switch (want) {
        // Q2_K / Q3_K: IQ4_NL as llama.cpp's 2024-25 releases wrote them (most published files); the
        // llama.cpp of 2026-09 (build/llama-src) writes Q4_0 instead. Kept IQ4_NL: the same 4.5 bits
        // a weight, and the files users have; sluice reads either (CPU and GPU).
        case GgmlType::Q2_K:
        case GgmlType::Q3_K:
        case GgmlType::IQ4_XS:
        case GgmlType::IQ2_XXS:
        case GgmlType::IQ2_XS:
        case GgmlType::IQ2_S:
        case GgmlType::IQ3_XXS:
        case GgmlType::IQ3_S:
        case GgmlType::IQ1_S:
        case GgmlType::IQ1_M: f = GgmlType::IQ4_NL; break;
        case GgmlType::Q4_K: f = GgmlType::Q5_0; break;
        case GgmlType::Q5_K: f = GgmlType::Q5_1; break;
        case GgmlType::Q6_K: f = GgmlType::Q8_0; break;
        default: break;
    }
    return ne[0] % type_info(f).block_size == 0 ? f : GgmlType::F16;
}

// general.file_type value (llama.cpp's llama_ftype) for a model mostly of type t.
inline uint32_t file_type_of(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return 0;
        case GgmlType::F16: return 1;
        case GgmlType::Q4_0: return 2;
        case GgmlType::Q5_0: return 8;
        case GgmlType::Q5_1: return 9;
        case GgmlType::Q8_0: return 7;
        case GgmlType::Q2_K: return 10;
        case GgmlType::Q3_K: return 11;  // Q3_K_S
        case GgmlType::Q4_K: return 14;  // Q4_K_S
        case GgmlType::Q5_K: return 16;  // Q5_K_S
        case GgmlType::Q6_K: return 18;
        case GgmlType::IQ4_NL: return 25;
        case GgmlType::IQ4_XS: return 30;
        case GgmlType::IQ2_XXS: return 19;
        case GgmlType::IQ2_XS: return 20;
        case GgmlType::IQ2_S: return 28;  // LLAMA_FTYPE_MOSTLY_IQ2_S, what llama.cpp's loader guesses for it
                                          // (its quantizer's IQ2_S files are mostly IQ2_XS, IQ2_M's IQ2_S)
        case GgmlType::IQ3_XXS: return 23;
        case GgmlType::IQ1_S: return 24;
        case GgmlType::IQ3_S: return 26;
        case GgmlType::IQ1_M: return 31;
        case GgmlType::BF16: return 32;
        default: return 0;
    }
}

}  // namespace sluice
