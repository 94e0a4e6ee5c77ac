// Just enough SPIR-V reading to check the C++ side against the shaders: which descriptor bindings a
// module declares, how large its push-constant block is, and its workgroup size.
#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "shaders/spirv.h"
#include "shaders/vk_runtime.h"

namespace sluice::gpu {

const SpirvModule* find_spirv(const std::string& name) {
    for (size_t i = 0; i < kSpirvModuleCount; ++i)
        if (name == kSpirvModules[i].name) return &kSpirvModules[i];
    return nullptr;
}

namespace {

// Opcodes and enumerants from the SPIR-V specification.
enum : uint32_t {
    OpExecutionMode = 16, OpTypeInt = 21, OpTypeFloat = 22, OpTypeVector = 23, OpTypeStruct = 30,
    OpTypePointer = 32, OpVariable = 59, OpDecorate = 71, OpMemberDecorate = 72,
    ModeLocalSize = 17, DecBinding = 33, DecDescriptorSet = 34, DecOffset = 35, StoragePushConstant = 9,
};

struct Types {
    std::map<uint32_t, uint32_t> scalar_bytes;                 // int / float type -> size
    std::map<uint32_t, std::pair<uint32_t, uint32_t>> vec;     // vector -> (component, count)
    std::map<uint32_t, std::vector<uint32_t>> structs;         // struct -> member types
    std::map<std::pair<uint32_t, uint32_t>, uint32_t> offset;  // (struct, member) -> offset
    std::map<uint32_t, uint32_t> pointee;                      // pointer -> pointed-to type

    uint32_t size_of(uint32_t t, const std::string& module) const {
        if (auto it = scalar_bytes.find(t); it != scalar_bytes.end()) return it->second;
        if (auto it = vec.find(t); it != vec.end()) return size_of(it->second.first, module) * it->second.second;
        if (auto it = structs.find(t); it != structs.end()) {
            uint32_t end = 0;
            for (uint32_t m = 0; m < it->second.size(); ++m) {
                auto o = offset.find({t, m});
                if (o == offset.end()) throw GpuError(module + ": push-constant member without an offset");
                end = std::max(end, o->second + size_of(it->second[m], module));
            }
            return end;
        }
        throw GpuError(module + ": push-constant block holds a type the runtime cannot size (scalars, vectors and structs only)");
    }
};

}  // namespace

SpirvLayout reflect_spirv(const SpirvModule& mod) {
    const std::string name = mod.name;
    const uint32_t* w = mod.words;
    if (mod.n_words < 5 || w[0] != 0x07230203u) throw GpuError(name + ": not a SPIR-V module");
    SpirvLayout out;
    Types types;
    std::map<uint32_t, uint32_t> binding, set;  // variable -> binding / descriptor set
    uint32_t push_var_type = 0;
    for (size_t i = 5; i < mod.n_words;) {
        const uint32_t op = w[i] & 0xFFFFu, len = w[i] >> 16;
        if (len == 0 || i + len > mod.n_words) throw GpuError(name + ": truncated SPIR-V instruction");
        const uint32_t* a = w + i + 1;  // operands
        switch (op) {
            case OpExecutionMode:
                if (a[1] == ModeLocalSize && len >= 6) std::memcpy(out.local, a + 2, 12);
                break;
            case OpTypeInt:
            case OpTypeFloat: types.scalar_bytes[a[0]] = a[1] / 8; break;
            case OpTypeVector: types.vec[a[0]] = {a[1], a[2]}; break;
            case OpTypeStruct: types.structs[a[0]] = std::vector<uint32_t>(a + 1, a + len - 1); break;
            case OpTypePointer: types.pointee[a[0]] = a[2]; break;
            case OpVariable:
                if (a[2] == StoragePushConstant) push_var_type = a[0];
                break;
            case OpDecorate:
                if (a[1] == DecBinding) binding[a[0]] = a[2];
                if (a[1] == DecDescriptorSet) set[a[0]] = a[2];
                break;
            case OpMemberDecorate:
                if (a[2] == DecOffset) types.offset[{a[0], a[1]}] = a[3];
                break;
            default: break;
        }
        i += len;
    }
    std::set<uint32_t> bindings;
    for (const auto& [var, b] : binding) {
        const uint32_t s = set.count(var) ? set[var] : 0;
        if (s == 1 && b == 0) {
            out.iq_grid = true;
            continue;
        }
        if (s != 0) throw GpuError(name + ": descriptor set " + std::to_string(s) + " binding " + std::to_string(b) +
                                   " (only set 0 and set 1's binding 0, the IQ grids, are bound)");
        bindings.insert(b);
    }
    out.n_bindings = uint32_t(bindings.size());
    if (!bindings.empty() && *bindings.rbegin() != out.n_bindings - 1)
        throw GpuError(name + ": bindings are not 0.." + std::to_string(out.n_bindings - 1) +
                       " (an unused one was optimised away?)");
    if (push_var_type) out.push_bytes = types.size_of(types.pointee.at(push_var_type), name);
    return out;
}

}  // namespace sluice::gpu
