// Rewrites a GGUF with its weight matrices in another type (norms and router stay F32), streaming row by
// row. `sluice quantize` and the reference tests use it.
#pragma once
#include <functional>
#include <string>

#include "engine/tensor/types.h"

namespace sluice {

// log: one line per notable event (a tensor falling back to another type). Returns the fallback count.
int requantize_file(const std::string& in, const std::string& out, GgmlType type,
                    const std::function<void(const std::string&)>& log = {});

}  // namespace sluice
