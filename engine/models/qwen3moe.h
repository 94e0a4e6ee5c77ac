// Shared by the two qwen3moe backends: qwen3moe.cpp (CPU, the reference) and qwen3moe_gpu.cpp.
#pragma once
#include "engine/gguf/gguf.h"
#include "engine/model.h"

namespace sluice {

// Hyperparameters of a qwen3moe / qwen3 file, validated (an Error names what is wrong); *top_k: the
// experts per token to use (0 for dense qwen3).
Hparams qwen3moe_hparams(const gguf::File& f, const ModelOptions& opt, int64_t* top_k);

}  // namespace sluice
