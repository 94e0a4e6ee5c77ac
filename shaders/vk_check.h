// VK_CHECK: a Vulkan call that must succeed, else GpuError naming the call, the result and the line.
// Internal to the runtime's .cpp files (vk_runtime.cpp, vk_cmd.cpp).
#pragma once

#include <string>

#include "shaders/vk_runtime.h"

namespace sluice::gpu {
const char* result_name(VkResult r);  // "VK_ERROR_DEVICE_LOST", ...
}  // namespace sluice::gpu

#define VK_CHECK(call)                                                                                  \
    do {                                                                                                \
        const VkResult r_ = (call);                                                                     \
        if (r_ != VK_SUCCESS)                                                                           \
            throw GpuError(std::string(#call).substr(0, std::string(#call).find('(')) + " failed: " +    \
                           result_name(r_) + " (" + std::to_string(int(r_)) + ") at " __FILE__ ":" +   \
                           std::to_string(__LINE__));                                                   \
    } while (0)
