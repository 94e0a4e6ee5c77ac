// The compiled shaders embedded in the binary (generated spirv_data.cpp) and what the runtime reads
// from their SPIR-V: binding count, push-constant block size, workgroup size.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sluice::gpu {

struct SpirvModule {
    const char* name;  // file name without .spv: "matvec_q4_k", "rmsnorm"
    const uint32_t* words;
    size_t n_words;
};
extern const SpirvModule kSpirvModules[];
extern const size_t kSpirvModuleCount;

const SpirvModule* find_spirv(const std::string& name);  // nullptr if absent

struct SpirvLayout {
    uint32_t n_bindings = 0;   // storage buffers at set 0, bindings 0 .. n_bindings - 1
    uint32_t push_bytes = 0;   // size of the push-constant block (0: none)
    uint32_t local[3] = {1, 1, 1};
    bool iq_grid = false;      // set 1, binding 0: the grid types' tables (shared.h IQG_*), bound by the runtime
};
// Throws GpuError when the module is malformed, its bindings are not 0..n-1 of set 0, or it declares
// another set than set 1's binding 0.
SpirvLayout reflect_spirv(const SpirvModule& m);

}  // namespace sluice::gpu
