// Vulkan entry points loaded at run time (dlopen of libvulkan.so.1), so a sluice binary starts and
// computes on the CPU on machines without a Vulkan loader; SLUICE_VULKAN_LIB names another library
// (tests point it at a missing file to check that fallback). Internal to shaders/.
#pragma once
#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#define SLUICE_VK_FUNCTIONS(X)                                                                         \
    X(vkDestroyInstance) X(vkEnumeratePhysicalDevices) X(vkGetPhysicalDeviceProperties)               \
    X(vkGetPhysicalDeviceProperties2) X(vkGetPhysicalDeviceFeatures2) X(vkGetPhysicalDeviceMemoryProperties) \
    X(vkGetPhysicalDeviceMemoryProperties2) X(vkGetPhysicalDeviceQueueFamilyProperties)             \
    X(vkEnumerateDeviceExtensionProperties) X(vkCreateDevice) X(vkDestroyDevice) X(vkGetDeviceQueue)  \
    X(vkCreateBuffer) X(vkDestroyBuffer) X(vkGetBufferMemoryRequirements) X(vkAllocateMemory)         \
    X(vkFreeMemory) X(vkBindBufferMemory) X(vkMapMemory) X(vkUnmapMemory) X(vkCreateCommandPool)      \
    X(vkDestroyCommandPool) X(vkAllocateCommandBuffers) X(vkFreeCommandBuffers) X(vkBeginCommandBuffer) \
    X(vkEndCommandBuffer) X(vkResetCommandBuffer) X(vkCmdCopyBuffer) X(vkCmdPipelineBarrier)          \
    X(vkCmdBindPipeline) X(vkCmdBindDescriptorSets) X(vkCmdPushConstants) X(vkCmdDispatch)            \
    X(vkCmdResetQueryPool) X(vkCmdWriteTimestamp) X(vkCreateFence) X(vkDestroyFence)                  \
    X(vkWaitForFences) X(vkGetFenceStatus) X(vkResetFences) X(vkQueueSubmit) X(vkDeviceWaitIdle) X(vkCreateShaderModule)  \
    X(vkDestroyShaderModule) X(vkCreateDescriptorSetLayout) X(vkDestroyDescriptorSetLayout)           \
    X(vkCreatePipelineLayout) X(vkDestroyPipelineLayout) X(vkCreateComputePipelines)                  \
    X(vkDestroyPipeline) X(vkCreateDescriptorPool) X(vkDestroyDescriptorPool) X(vkResetDescriptorPool) \
    X(vkAllocateDescriptorSets) X(vkUpdateDescriptorSets) X(vkCreateQueryPool) X(vkDestroyQueryPool)  \
    X(vkGetQueryPoolResults)

namespace sluice::gpu::vk {
#define SLUICE_VK_DECLARE(f) extern PFN_##f f;
SLUICE_VK_FUNCTIONS(SLUICE_VK_DECLARE)
#undef SLUICE_VK_DECLARE

// The process's one VkInstance (created on first use; the loader library stays loaded). Throws
// GpuError saying why when there is no loader or no driver.
VkInstance instance();
}  // namespace sluice::gpu::vk
