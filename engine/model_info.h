// What a GGUF holds, without loading it: hyperparameters, tensor types, bytes of dense vs expert
// weights and the bytes one token touches. Works for any architecture that names its expert tensors
// the llama.cpp way (*_exps); used by `sluice info`, bench and the memory budget.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/gguf/gguf.h"

namespace sluice {

struct ModelInfo {
    std::string arch, name;
    std::vector<std::pair<std::string, std::string>> hparams;  // "<arch>.*" keys, printed values
    std::map<std::string, std::pair<int64_t, uint64_t>> types;  // type name -> (tensors, bytes)
    int64_t n_params = 0;
    uint64_t dense_bytes = 0;    // everything but *_exps tensors
    uint64_t expert_bytes = 0;   // all *_exps tensors
    int64_t n_expert = 0, n_expert_used = 0, n_moe_layers = 0;
    uint64_t expert_slab_bytes = 0;      // one expert of one layer (gate + up + down), averaged
    uint64_t expert_bytes_per_token = 0; // n_moe_layers * used * slab
    uint64_t dense_bytes_per_token = 0;  // dense weights a decode step reads (one embedding row)
};

// experts_used: 0 = the file's expert_used_count.
ModelInfo model_info(const gguf::File& f, int64_t experts_used = 0);
std::string format_bytes(uint64_t b);  // "1.23 GiB"

}  // namespace sluice
