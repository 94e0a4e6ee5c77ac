// Rewrites a GGUF with its weight matrices in another type (norms and router stay F32), streaming row by
// row. `sluice quantize` and the reference tests use it.
#pragma once
#include <functional>
#include <string>

#include "engine/tensor/types.h"

namespace sluice {

// log: one line per notable event (a tensor falling back to another type). Returns the fallback count.
// pick (optional): the type of each tensor, given its name and the planned type (mixed-type files, as
// llama.cpp's Q4_K_M writes with attn_v in Q6_K).
int requantize_file(const std::string& in, const std::string& out, GgmlType type,
                    const std::function<void(const std::string&)>& log = {},
                    const std::function<GgmlType(const std::string& name, GgmlType planned)>& pick = {});

}  // namespace sluice
