#include "shaders/vk_runtime.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <iterator>
#include <mutex>

#include "engine/tensor/iq_grids.h"
#include "shaders/shared.h"
#include "shaders/vk_check.h"
#include "shaders/vk_loader.h"

namespace sluice::gpu {

using namespace vk;

namespace vk {
#define SLUICE_VK_DEFINE(f) PFN_##f f = nullptr;
SLUICE_VK_FUNCTIONS(SLUICE_VK_DEFINE)
#undef SLUICE_VK_DEFINE
}  // namespace vk

const char* result_name(VkResult r) {
    switch (r) {
        case VK_SUCCESS: return "VK_SUCCESS";
        case VK_NOT_READY: return "VK_NOT_READY";
        case VK_TIMEOUT: return "VK_TIMEOUT";
        case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
        case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
        case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
        case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
        case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
        case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
        case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
        case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
        case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
        case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
        default: return "VkResult";
    }
}

namespace {



struct Loader {
    void* lib = nullptr;
    VkInstance inst = VK_NULL_HANDLE;
    std::string error;
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV coopmat_props = nullptr;  // optional
    // VK_KHR_pipeline_executable_properties (optional): SLUICE_GPU_STATS=1 prints each pipeline's
    // compiler statistics (registers, shared memory, spills where the driver reports them).
    PFN_vkGetPipelineExecutablePropertiesKHR exec_props = nullptr;
    PFN_vkGetPipelineExecutableStatisticsKHR exec_stats = nullptr;
    PFN_vkGetMemoryHostPointerPropertiesEXT host_ptr_props = nullptr;  // VK_EXT_external_memory_host (optional)
};

Loader& loader() {
    static Loader L;
    static std::once_flag once;
    std::call_once(once, [] {
        const char* name = std::getenv("SLUICE_VULKAN_LIB");
        if (!name || !*name) name = "libvulkan.so.1";
        L.lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (!L.lib) {
            L.error = std::string("no Vulkan loader (") + name + " not found: install libvulkan1 and a driver)";
            return;
        }
        auto gipa = reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(L.lib, "vkGetInstanceProcAddr"));
        auto create = gipa ? reinterpret_cast<PFN_vkCreateInstance>(gipa(VK_NULL_HANDLE, "vkCreateInstance")) : nullptr;
        if (!create) {
            L.error = std::string(name) + " has no vkCreateInstance";
            return;
        }
        VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
        app.pApplicationName = "sluice";
        app.apiVersion = VK_API_VERSION_1_2;
        VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
        ci.pApplicationInfo = &app;
        const VkResult r = create(&ci, nullptr, &L.inst);
        if (r != VK_SUCCESS) {
            L.error = std::string("Vulkan has no usable driver (vkCreateInstance: ") + result_name(r) + ")";
            L.inst = VK_NULL_HANDLE;
            return;
        }
#define SLUICE_VK_LOAD(f) f = reinterpret_cast<PFN_##f>(gipa(L.inst, #f));
        SLUICE_VK_FUNCTIONS(SLUICE_VK_LOAD)
#undef SLUICE_VK_LOAD
        L.coopmat_props = reinterpret_cast<PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV>(
            gipa(L.inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV"));
        L.exec_props = reinterpret_cast<PFN_vkGetPipelineExecutablePropertiesKHR>(gipa(L.inst, "vkGetPipelineExecutablePropertiesKHR"));
        L.exec_stats = reinterpret_cast<PFN_vkGetPipelineExecutableStatisticsKHR>(gipa(L.inst, "vkGetPipelineExecutableStatisticsKHR"));
        L.host_ptr_props = reinterpret_cast<PFN_vkGetMemoryHostPointerPropertiesEXT>(gipa(L.inst, "vkGetMemoryHostPointerPropertiesEXT"));
#define SLUICE_VK_CHECK_LOADED(f) if (!f) L.error = std::string("the Vulkan loader lacks ") + #f;
        SLUICE_VK_FUNCTIONS(SLUICE_VK_CHECK_LOADED)
#undef SLUICE_VK_CHECK_LOADED
    });
    return L;
}

bool has_extension(VkPhysicalDevice pd, const char* name) {
    uint32_t n = 0;
    vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, nullptr);
    std::vector<VkExtensionProperties> exts(n);
    vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, exts.data());
    for (const auto& e : exts)
        if (!std::strcmp(e.extensionName, name)) return true;
    return false;
}

// VK_NV_cooperative_matrix with a subgroup-scope 16x16x16 float16 x float16 + float32 product, and
// shaderFloat16 (mm.comp's MM_COOPMAT variants).
bool coopmat_f16(VkPhysicalDevice pd) {
    const Loader& L = loader();
    if (!L.coopmat_props || !has_extension(pd, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME)) return false;
    VkPhysicalDeviceCooperativeMatrixFeaturesNV fc{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    VkPhysicalDeviceShaderFloat16Int8Features f16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    fc.pNext = &f16;
    VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    f2.pNext = &fc;
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    if (!fc.cooperativeMatrix || !f16.shaderFloat16) return false;
    uint32_t n = 0;
    L.coopmat_props(pd, &n, nullptr);
    std::vector<VkCooperativeMatrixPropertiesNV> props(n, {VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV});
    L.coopmat_props(pd, &n, props.data());
    for (const auto& c : props)
        if (c.MSize == 16 && c.NSize == 16 && c.KSize == 16 && c.AType == VK_COMPONENT_TYPE_FLOAT16_NV &&
            c.BType == VK_COMPONENT_TYPE_FLOAT16_NV && c.CType == VK_COMPONENT_TYPE_FLOAT32_NV &&
            c.DType == VK_COMPONENT_TYPE_FLOAT32_NV && c.scope == VK_SCOPE_SUBGROUP_NV)
            return true;
    return false;
}

// SLUICE_GPU_STATS=1: the driver's statistics of a new pipeline on stderr, one line (NVIDIA reports
// registers per invocation, which bound how many workgroups share a multiprocessor).
void print_pipeline_stats(VkDevice dev, VkPipeline pipe, const std::string& name) {
    const Loader& L = loader();
    VkPipelineInfoKHR pi{VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR};
    pi.pipeline = pipe;
    uint32_t n_exec = 0;
    if (!L.exec_props || L.exec_props(dev, &pi, &n_exec, nullptr) != VK_SUCCESS) return;
    std::string line = "gpu stats " + name + ":";
    for (uint32_t e = 0; e < n_exec; ++e) {
        VkPipelineExecutableInfoKHR ei{VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR};
        ei.pipeline = pipe;
        ei.executableIndex = e;
        uint32_t n = 0;
        if (L.exec_stats(dev, &ei, &n, nullptr) != VK_SUCCESS) continue;
        std::vector<VkPipelineExecutableStatisticKHR> st(n, {VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR});
        if (L.exec_stats(dev, &ei, &n, st.data()) != VK_SUCCESS) continue;
        for (const auto& s : st) {
            line += std::string(" ") + s.name + "=";
            switch (s.format) {
                case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: line += s.value.b32 ? "yes" : "no"; break;
                case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: line += std::to_string(s.value.i64); break;
                case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: line += std::to_string(s.value.u64); break;
                case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_FLOAT64_KHR: line += std::to_string(s.value.f64); break;
                default: line += "?";
            }
        }
    }
    std::fprintf(stderr, "%s\n", line.c_str());
}

DeviceInfo describe(VkPhysicalDevice pd, int index) {
    DeviceInfo d;
    d.index = index;
    VkPhysicalDeviceSubgroupProperties sg{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    p2.pNext = &sg;
    vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceProperties& p = p2.properties;
    d.name = p.deviceName;
    d.is_cpu = p.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    d.unified = p.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU || p.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU;
    d.subgroup_size = sg.subgroupSize;
    d.max_buffer_range = p.limits.maxStorageBufferRange;
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    for (uint32_t i = 0; i < mp.memoryHeapCount; ++i)
        if (mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            d.vram_bytes = std::max<uint64_t>(d.vram_bytes, mp.memoryHeaps[i].size);

    VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceShaderIntegerDotProductFeatures fdot{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    f2.pNext = &f11;
    if (has_extension(pd, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME)) {
        f11.pNext = &fdot;
        VkPhysicalDeviceShaderIntegerDotProductProperties pdot{
            VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
        VkPhysicalDeviceProperties2 pp{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
        pp.pNext = &pdot;
        vkGetPhysicalDeviceProperties2(pd, &pp);
        d.int_dot_fast = pdot.integerDotProduct4x8BitPackedMixedSignednessAccelerated;
    }
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    d.int_dot = fdot.shaderIntegerDotProduct && sg.subgroupSize >= 8;  // q8_block.glsl shuffles over 8
    if (!d.int_dot) d.int_dot_fast = false;
    d.coopmat = d.int_dot && sg.subgroupSize == 32 && coopmat_f16(pd);
    if (has_extension(pd, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME)) {
        VkPhysicalDeviceSubgroupSizeControlProperties sp{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
        VkPhysicalDeviceProperties2 pp{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
        pp.pNext = &sp;
        vkGetPhysicalDeviceProperties2(pd, &pp);
        VkPhysicalDeviceSubgroupSizeControlFeatures sf{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
        VkPhysicalDeviceFeatures2 ff{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
        ff.pNext = &sf;
        vkGetPhysicalDeviceFeatures2(pd, &ff);
        // Only where sizes vary (Intel: 8-32, AMD: 32-64): the extension allows such a device to run a
        // pipeline in smaller subgroups than gl_SubgroupSize says, some invocations inactive, and the
        // shaders take a subgroup of 32 for a team of 32 (matvec.comp). A fixed size (NVIDIA) is left as is.
        // SLUICE_GPU_PIN_SUBGROUP=1 pins a fixed size too (tests cover the pinned pipelines on lavapipe).
        const char* force = std::getenv("SLUICE_GPU_PIN_SUBGROUP");
        const bool varies = sp.minSubgroupSize < sp.maxSubgroupSize || (force && *force == '1');
        d.pin_subgroup = varies && sf.subgroupSizeControl && sf.computeFullSubgroups &&
                         (sp.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                         sp.minSubgroupSize <= sg.subgroupSize && sg.subgroupSize <= sp.maxSubgroupSize;
        d.max_wg_subgroups = sp.maxComputeWorkgroupSubgroups;
    }
    if (has_extension(pd, VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME)) {
        VkPhysicalDeviceShaderSMBuiltinsPropertiesNV sm{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV};
        VkPhysicalDeviceProperties2 pp{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
        pp.pNext = &sm;
        vkGetPhysicalDeviceProperties2(pd, &pp);
        d.sm_count = sm.shaderSMCount;
    }
    std::string missing;
    auto need = [&](bool ok, const char* what) {
        if (!ok) missing += std::string(missing.empty() ? "" : ", ") + what;
    };
    need(p.apiVersion >= VK_API_VERSION_1_2, "Vulkan 1.2");
    need(f11.storageBuffer16BitAccess, "storageBuffer16BitAccess");
    need(f2.features.shaderInt16, "shaderInt16");
    need(sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT, "subgroups in compute shaders");
    need(sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT, "subgroup arithmetic");
    need(sg.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT, "subgroup shuffle");
    need(p.limits.maxComputeWorkGroupInvocations >= 256, "256 invocations per workgroup");
    need(p.limits.maxPushConstantsSize >= 128, "128 bytes of push constants");
    need(p.limits.maxPerStageDescriptorStorageBuffers >= 9, "9 storage buffers per stage");
    d.usable = missing.empty();
    if (!d.usable) d.why_not = "lacks " + missing;
    return d;
}

std::vector<VkPhysicalDevice> physical_devices() {
    Loader& L = loader();
    if (!L.error.empty()) throw GpuError(L.error);
    uint32_t n = 0;
    VK_CHECK(vkEnumeratePhysicalDevices(L.inst, &n, nullptr));
    std::vector<VkPhysicalDevice> pds(n);
    VK_CHECK(vkEnumeratePhysicalDevices(L.inst, &n, pds.data()));
    pds.resize(n);
    return pds;
}

constexpr size_t kStagingBytes = 64ull << 20;

}  // namespace

VkInstance vk::instance() {
    Loader& L = loader();
    if (!L.error.empty()) throw GpuError(L.error);
    return L.inst;
}

std::vector<DeviceInfo> list_devices() {
    std::vector<DeviceInfo> out;
    const auto pds = physical_devices();
    for (size_t i = 0; i < pds.size(); ++i) out.push_back(describe(pds[i], int(i)));
    return out;
}

// ---- Buffer

Buffer& Buffer::operator=(Buffer&& o) noexcept {
    if (this != &o) {
        release();
        dev_ = o.dev_; buf_ = o.buf_; mem_ = o.mem_; size_ = o.size_; mapped_ = o.mapped_; flags_ = o.flags_;
        o.buf_ = VK_NULL_HANDLE; o.mem_ = VK_NULL_HANDLE; o.mapped_ = nullptr; o.size_ = 0;
    }
    return *this;
}

void Buffer::release() {
    if (buf_) vkDestroyBuffer(dev_, buf_, nullptr);
    if (mem_) vkFreeMemory(dev_, mem_, nullptr);  // unmaps too
    buf_ = VK_NULL_HANDLE;
    mem_ = VK_NULL_HANDLE;
    mapped_ = nullptr;
}

// ---- Context

Context::Context(int index, bool emulate_discrete) {
    const auto pds = physical_devices();
    if (index < 0 || size_t(index) >= pds.size())
        throw GpuError("no Vulkan device " + std::to_string(index) + " (" + std::to_string(pds.size()) + " found)");
    phys_ = pds[size_t(index)];
    info_ = describe(phys_, index);
    if (!info_.usable) throw GpuError("Vulkan device " + std::to_string(index) + " (" + info_.name + ") " + info_.why_not);
    inst_ = vk::instance();
    if (emulate_discrete) info_.unified = false;
    vkGetPhysicalDeviceMemoryProperties(phys_, &memprops_);

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(phys_, &nq, nullptr);
    std::vector<VkQueueFamilyProperties> qf(nq);
    vkGetPhysicalDeviceQueueFamilyProperties(phys_, &nq, qf.data());
    qfam_ = UINT32_MAX;
    for (uint32_t i = 0; i < nq && qfam_ == UINT32_MAX; ++i)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) qfam_ = i;
    if (qfam_ == UINT32_MAX) throw GpuError(info_.name + " has no compute queue");
    VkPhysicalDeviceProperties props;
    vkGetPhysicalDeviceProperties(phys_, &props);
    if (qf[qfam_].timestampValidBits > 0) ts_period_ns_ = props.limits.timestampPeriod;

    std::vector<const char*> enable;
    has_budget_ = has_extension(phys_, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    if (has_budget_) enable.push_back(VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    const char* stats_env = std::getenv("SLUICE_GPU_STATS");
    exec_stats_ = stats_env && *stats_env == '1' && loader().exec_stats &&
                  has_extension(phys_, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR fexec{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR};
    if (exec_stats_) {
        enable.push_back(VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
        fexec.pipelineExecutableInfo = VK_TRUE;
    }
    VkPhysicalDeviceShaderIntegerDotProductFeatures fdot{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    if (info_.int_dot) {
        enable.push_back(VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
        fdot.shaderIntegerDotProduct = VK_TRUE;
    }

    // Host memory imported as copy sources (import_host()): discrete GPUs only (unified memory is mapped).
    can_import_ = !info_.unified && loader().host_ptr_props && has_extension(phys_, VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
    if (can_import_) {
        enable.push_back(VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
        VkPhysicalDeviceExternalMemoryHostPropertiesEXT hp{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_MEMORY_HOST_PROPERTIES_EXT};
        VkPhysicalDeviceProperties2 pp{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
        pp.pNext = &hp;
        vkGetPhysicalDeviceProperties2(phys_, &pp);
        import_align_ = std::max<uint64_t>(hp.minImportedHostPointerAlignment, 1);
    }
    VkPhysicalDeviceSubgroupSizeControlFeatures fsg{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
    if (info_.pin_subgroup) {
        enable.push_back(VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
        fsg.subgroupSizeControl = VK_TRUE;
        fsg.computeFullSubgroups = VK_TRUE;
    }
    VkPhysicalDeviceCooperativeMatrixFeaturesNV fcm{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    VkPhysicalDeviceShaderFloat16Int8Features f16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    if (info_.coopmat) {
        enable.push_back(VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
        fcm.cooperativeMatrix = VK_TRUE;
        f16.shaderFloat16 = VK_TRUE;
        fcm.pNext = &f16;
        fdot.pNext = &fcm;  // chained below through the integer dot features (coopmat implies int_dot)
    }

    const float prio = 1.0f;
    VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    qci.queueFamilyIndex = qfam_;
    qci.queueCount = 1;
    qci.pQueuePriorities = &prio;
    VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    f11.storageBuffer16BitAccess = VK_TRUE;
    if (info_.int_dot) f11.pNext = &fdot;
    VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    f2.pNext = &f11;
    if (exec_stats_) {  // in front of the chain
        fexec.pNext = f2.pNext;
        f2.pNext = &fexec;
    }
    if (info_.pin_subgroup) {  // in front of the chain
        fsg.pNext = f2.pNext;
        f2.pNext = &fsg;
    }
    f2.features.shaderInt16 = VK_TRUE;
    VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    dci.pNext = &f2;
    dci.queueCreateInfoCount = 1;
    dci.pQueueCreateInfos = &qci;
    dci.enabledExtensionCount = uint32_t(enable.size());
    dci.ppEnabledExtensionNames = enable.data();
    VK_CHECK(vkCreateDevice(phys_, &dci, nullptr, &dev_));
    vkGetDeviceQueue(dev_, qfam_, 0, &queue_);

    VkCommandPoolCreateInfo pci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pci.queueFamilyIndex = qfam_;
    VK_CHECK(vkCreateCommandPool(dev_, &pci, nullptr, &pool_));
    dummy_ = alloc(256, Mem::Device, "dummy binding");
}

Context::~Context() {
    if (!dev_) return;
    vkDeviceWaitIdle(dev_);
    for (auto& [name, k] : kernels_) {
        vkDestroyPipeline(dev_, k.pipe, nullptr);
        vkDestroyPipelineLayout(dev_, k.pl, nullptr);
        vkDestroyDescriptorSetLayout(dev_, k.dsl, nullptr);
    }
    for (int i = 0; i < 2; ++i) {
        staging_[i] = Buffer();
        if (staging_fence_[i]) vkDestroyFence(dev_, staging_fence_[i], nullptr);
    }
    dummy_ = Buffer();
    grid_buf_ = Buffer();
    if (grid_pool_) vkDestroyDescriptorPool(dev_, grid_pool_, nullptr);
    if (grid_dsl_) vkDestroyDescriptorSetLayout(dev_, grid_dsl_, nullptr);
    vkDestroyCommandPool(dev_, pool_, nullptr);
    vkDestroyDevice(dev_, nullptr);
}

uint64_t Context::vram_budget() const {
    uint64_t best = 0;
    if (has_budget_) {
        VkPhysicalDeviceMemoryBudgetPropertiesEXT b{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
        VkPhysicalDeviceMemoryProperties2 mp{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2};
        mp.pNext = &b;
        vkGetPhysicalDeviceMemoryProperties2(phys_, &mp);
        for (uint32_t i = 0; i < mp.memoryProperties.memoryHeapCount; ++i)
            if (mp.memoryProperties.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
                best = std::max<uint64_t>(best, b.heapBudget[i] > b.heapUsage[i] ? b.heapBudget[i] - b.heapUsage[i] : 0);
        return best;
    }
    return info_.vram_bytes;
}

uint32_t Context::memory_type(uint32_t bits, Mem mem) const {
    const VkMemoryPropertyFlags DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, HV = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT,
                                HC = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, CA = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    // Candidate property sets, best first.
    std::vector<VkMemoryPropertyFlags> want;
    switch (mem) {
        case Mem::Device:
            if (info_.unified) want = {DL | HV | HC | CA, DL | HV | HC};
            want.push_back(DL);
            break;
        case Mem::Upload: want = {HV | HC}; break;
        case Mem::Readback: want = {HV | HC | CA, HV | HC}; break;
    }
    for (VkMemoryPropertyFlags w : want)
        for (uint32_t i = 0; i < memprops_.memoryTypeCount; ++i)
            if ((bits >> i & 1) && (memprops_.memoryTypes[i].propertyFlags & w) == w) {
                // Staging and readback buffers belong in system memory, not a small BAR window.
                if (mem != Mem::Device && !info_.unified && (memprops_.memoryTypes[i].propertyFlags & DL)) continue;
                return i;
            }
    for (VkMemoryPropertyFlags w : want)  // any match, BAR included
        for (uint32_t i = 0; i < memprops_.memoryTypeCount; ++i)
            if ((bits >> i & 1) && (memprops_.memoryTypes[i].propertyFlags & w) == w) return i;
    throw GpuError(info_.name + ": no suitable memory type");
}

Buffer Context::alloc(size_t bytes, Mem mem, const std::string& what) {
    if (bytes == 0) bytes = 16;
    // Whole 16-byte units: shaders read 2-aligned blocks (Q4_0, Q8_0, Q3_K, Q6_K) as words, and a word
    // that holds a buffer's last 2 bytes must lie within the bound range.
    const size_t whole = (bytes + 15) / 16 * 16;
    if (whole > info_.max_buffer_range)
        throw GpuError(what + " needs " + std::to_string(bytes) + " bytes in one buffer; " + info_.name +
                       " binds at most " + std::to_string(info_.max_buffer_range));
    Buffer b;
    b.dev_ = dev_;
    b.size_ = bytes;
    VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bci.size = whole;
    bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    VK_CHECK(vkCreateBuffer(dev_, &bci, nullptr, &b.buf_));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(dev_, b.buf_, &req);
    VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    mai.allocationSize = req.size;
    mai.memoryTypeIndex = memory_type(req.memoryTypeBits, mem);
    b.flags_ = memprops_.memoryTypes[mai.memoryTypeIndex].propertyFlags;
    const VkResult r = vkAllocateMemory(dev_, &mai, nullptr, &b.mem_);
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
        throw GpuError(info_.name + " is out of memory for " + what + " (" + std::to_string(bytes >> 20) + " MiB)");
    VK_CHECK(r);
    VK_CHECK(vkBindBufferMemory(dev_, b.buf_, b.mem_, 0));
    const bool map = mem != Mem::Device || info_.unified;  // device buffers of a discrete GPU: never mapped
    if (map && (memprops_.memoryTypes[mai.memoryTypeIndex].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT))
        VK_CHECK(vkMapMemory(dev_, b.mem_, 0, VK_WHOLE_SIZE, 0, &b.mapped_));
    return b;
}

Buffer Context::import_host(const void* ptr, size_t bytes, const std::string& what) {
    const auto p = reinterpret_cast<uintptr_t>(ptr);
    if (!can_import_) throw GpuError(info_.name + " cannot import host memory (VK_EXT_external_memory_host)");
    if (p % import_align_ || bytes % import_align_ || !bytes)
        throw GpuError(what + ": host range not aligned to " + std::to_string(import_align_) + " bytes");
    constexpr auto kType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT;
    VkMemoryHostPointerPropertiesEXT hp{VK_STRUCTURE_TYPE_MEMORY_HOST_POINTER_PROPERTIES_EXT};
    VkResult r = loader().host_ptr_props(dev_, kType, const_cast<void*>(ptr), &hp);
    if (r != VK_SUCCESS) throw GpuError(what + ": the driver cannot import this host memory (" + result_name(r) + ")");
    Buffer b;
    b.dev_ = dev_;
    b.size_ = bytes;
    VkExternalMemoryBufferCreateInfo ext{VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO};
    ext.handleTypes = kType;
    VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bci.pNext = &ext;
    bci.size = bytes;
    bci.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT;
    bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    VK_CHECK(vkCreateBuffer(dev_, &bci, nullptr, &b.buf_));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(dev_, b.buf_, &req);
    const uint32_t bits = req.memoryTypeBits & hp.memoryTypeBits;
    uint32_t type = UINT32_MAX;
    for (uint32_t i = 0; i < memprops_.memoryTypeCount && type == UINT32_MAX; ++i)
        if ((bits >> i & 1u) && (memprops_.memoryTypes[i].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)) type = i;
    if (type == UINT32_MAX || req.size > bytes) throw GpuError(what + ": no memory type to import host memory into");
    VkImportMemoryHostPointerInfoEXT imp{VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT};
    imp.handleType = kType;
    imp.pHostPointer = const_cast<void*>(ptr);
    VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    mai.pNext = &imp;
    mai.allocationSize = bytes;
    mai.memoryTypeIndex = type;
    r = vkAllocateMemory(dev_, &mai, nullptr, &b.mem_);
    if (r != VK_SUCCESS) throw GpuError(what + ": importing " + std::to_string(bytes >> 20) + " MiB of host memory failed (" + result_name(r) + ")");
    b.flags_ = memprops_.memoryTypes[type].propertyFlags;
    VK_CHECK(vkBindBufferMemory(dev_, b.buf_, b.mem_, 0));
    return b;
}

void Context::submit_copy(const Buffer& src, size_t so, const Buffer& dst, size_t d, size_t n, VkFence fence,
                          VkCommandBuffer cb) {
    VK_CHECK(vkResetCommandBuffer(cb, 0));
    VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    VK_CHECK(vkBeginCommandBuffer(cb, &bi));
    VkBufferCopy region{so, d, n};
    vkCmdCopyBuffer(cb, src.handle(), dst.handle(), 1, &region);
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_SHADER_READ_BIT;
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                         0, 1, &mb, 0, nullptr, 0, nullptr);
    VK_CHECK(vkEndCommandBuffer(cb));
    VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cb;
    VK_CHECK(vkQueueSubmit(queue_, 1, &si, fence));
}

void Context::upload(Buffer& dst, size_t offset, const void* src, size_t n) {
    if (offset + n > dst.size()) throw GpuError("upload past the end of a buffer");
    if (dst.mapped()) {
        std::memcpy(static_cast<uint8_t*>(dst.mapped()) + offset, src, n);
        return;
    }
    if (!staging_[0]) {
        VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
        ai.commandPool = pool_;
        ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
        ai.commandBufferCount = 2;
        VK_CHECK(vkAllocateCommandBuffers(dev_, &ai, staging_cb_));
        for (int i = 0; i < 2; ++i) {
            staging_[i] = alloc(kStagingBytes, Mem::Upload, "staging buffer");
            VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
            fci.flags = VK_FENCE_CREATE_SIGNALED_BIT;
            VK_CHECK(vkCreateFence(dev_, &fci, nullptr, &staging_fence_[i]));
        }
    }
    // Two halves: fill one while the GPU copies out of the other.
    const auto* p = static_cast<const uint8_t*>(src);
    int slot = 0;
    for (size_t done = 0; done < n; slot ^= 1) {
        const size_t len = std::min(kStagingBytes, n - done);
        VK_CHECK(vkWaitForFences(dev_, 1, &staging_fence_[slot], VK_TRUE, UINT64_MAX));
        VK_CHECK(vkResetFences(dev_, 1, &staging_fence_[slot]));
        std::memcpy(staging_[slot].mapped(), p + done, len);
        submit_copy(staging_[slot], 0, dst, offset + done, len, staging_fence_[slot], staging_cb_[slot]);
        done += len;
    }
    VK_CHECK(vkWaitForFences(dev_, 2, staging_fence_, VK_TRUE, UINT64_MAX));
}

void Context::download(const Buffer& src, size_t offset, void* dst, size_t n) {
    if (offset + n > src.size()) throw GpuError("download past the end of a buffer");
    if (src.mapped()) {
        std::memcpy(dst, static_cast<const uint8_t*>(src.mapped()) + offset, n);
        return;
    }
    Buffer rb = alloc(n, Mem::Readback, "readback buffer");
    VkCommandBuffer cb;
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = pool_;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    VK_CHECK(vkAllocateCommandBuffers(dev_, &ai, &cb));
    VkFence fence;
    VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VK_CHECK(vkCreateFence(dev_, &fci, nullptr, &fence));
    submit_copy(src, offset, rb, 0, n, fence, cb);
    const VkResult r = vkWaitForFences(dev_, 1, &fence, VK_TRUE, UINT64_MAX);
    vkDestroyFence(dev_, fence, nullptr);
    vkFreeCommandBuffers(dev_, pool_, 1, &cb);
    VK_CHECK(r);
    std::memcpy(dst, rb.mapped(), n);
}

// The seven grids as shared.h's IQG_* layout: a uvec2 (8 bytes) per entry.
void Context::make_iq_grids() {
    std::vector<uint64_t> g(IQG_ENTRIES, 0);
    auto put = [&](uint32_t off, const auto& grid, int plus) {
        for (size_t i = 0; i < grid.size(); ++i)
            for (size_t j = 0; j < sizeof(grid[i]); ++j)  // byte by byte: IQ1's 0xFF + 1 must not carry
                g[off + i] |= uint64_t(uint8_t(int(int8_t(grid[i] >> (8 * j))) + plus)) << (8 * j);
    };
    put(IQG_IQ2XXS, blocks::kIq2xxsGrid, 0);
    put(IQG_IQ2XS, blocks::kIq2xsGrid, 0);
    put(IQG_IQ2S, blocks::kIq2sGrid, 0);
    put(IQG_IQ3XXS, blocks::kIq3xxsGrid, 0);
    put(IQG_IQ3S, blocks::kIq3sGrid, 0);
    put(IQG_IQ1S, blocks::kIq1sGrid, 1);  // -1 / 0 / 1 as 0 / 1 / 2
    grid_buf_ = alloc(g.size() * sizeof(uint64_t), Mem::Device, "IQ grids");
    upload(grid_buf_, 0, g.data(), g.size() * sizeof(uint64_t));

    VkDescriptorSetLayoutBinding b{0, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
    VkDescriptorSetLayoutCreateInfo dci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    dci.bindingCount = 1;
    dci.pBindings = &b;
    VK_CHECK(vkCreateDescriptorSetLayout(dev_, &dci, nullptr, &grid_dsl_));
    VkDescriptorPoolSize ps{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1};
    VkDescriptorPoolCreateInfo pci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
    pci.maxSets = 1;
    pci.poolSizeCount = 1;
    pci.pPoolSizes = &ps;
    VK_CHECK(vkCreateDescriptorPool(dev_, &pci, nullptr, &grid_pool_));
    VkDescriptorSetAllocateInfo dai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    dai.descriptorPool = grid_pool_;
    dai.descriptorSetCount = 1;
    dai.pSetLayouts = &grid_dsl_;
    VK_CHECK(vkAllocateDescriptorSets(dev_, &dai, &grid_set_));
    VkDescriptorBufferInfo info{grid_buf_.handle(), 0, VK_WHOLE_SIZE};
    VkWriteDescriptorSet w{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, nullptr, grid_set_, 0, 0, 1,
                           VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, nullptr, &info, nullptr};
    vkUpdateDescriptorSets(dev_, 1, &w, 0, nullptr);
}

const Kernel& Context::kernel(const std::string& name) {
    auto it = kernels_.find(name);
    if (it != kernels_.end()) return it->second;
    const SpirvModule* mod = find_spirv(name);
    if (!mod) throw GpuError("no shader named '" + name + "' is built into this binary");
    Kernel k;
    k.name = name;
    k.layout = reflect_spirv(*mod);
    // Work items per workgroup: matvec dispatches count workgroups (ops.cpp knows the variant's rows
    // per workgroup) and the kernels below run one workgroup per item (row, head, split); the rest
    // one invocation per item.
    const bool per_workgroup = !name.rfind("matvec_", 0) || !name.rfind("matmul_", 0) || !name.rfind("mm", 0) || !name.rfind("attn_prompt", 0) || name == "rmsnorm" ||
                               name == "qk_norm_rope" || !name.rfind("attn_split_", 0) || !name.rfind("attn_fused_", 0) || name == "attn_combine" ||
                               name == "topk_softmax" || name == "copy" || name == "norm_q8" || name == "touch";
    if (!per_workgroup) std::copy(k.layout.local, k.layout.local + 3, k.per_group);

    std::vector<VkDescriptorSetLayoutBinding> binds(k.layout.n_bindings);
    for (uint32_t i = 0; i < k.layout.n_bindings; ++i)
        binds[i] = {i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
    VkDescriptorSetLayoutCreateInfo dci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    dci.bindingCount = uint32_t(binds.size());
    dci.pBindings = binds.data();
    VK_CHECK(vkCreateDescriptorSetLayout(dev_, &dci, nullptr, &k.dsl));
    VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, k.layout.push_bytes};
    if (k.layout.iq_grid && !grid_set_) make_iq_grids();
    const VkDescriptorSetLayout sets[2] = {k.dsl, grid_dsl_};
    VkPipelineLayoutCreateInfo lci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    lci.setLayoutCount = k.layout.iq_grid ? 2 : 1;
    lci.pSetLayouts = sets;
    lci.pushConstantRangeCount = k.layout.push_bytes ? 1 : 0;
    lci.pPushConstantRanges = &range;
    VK_CHECK(vkCreatePipelineLayout(dev_, &lci, nullptr, &k.pl));
    VkShaderModuleCreateInfo sci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    sci.codeSize = mod->n_words * 4;
    sci.pCode = mod->words;
    VkShaderModule sm;
    VK_CHECK(vkCreateShaderModule(dev_, &sci, nullptr, &sm));
    VkComputePipelineCreateInfo cpi{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    cpi.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, nullptr, 0, VK_SHADER_STAGE_COMPUTE_BIT, sm, "main", nullptr};
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo rsz{
        VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO};
    const uint32_t sgs = info_.subgroup_size, invocations = k.layout.local[0] * k.layout.local[1] * k.layout.local[2];
    if (info_.pin_subgroup && invocations <= uint64_t(info_.max_wg_subgroups) * sgs) {  // else the driver's choice
        rsz.requiredSubgroupSize = sgs;
        cpi.stage.pNext = &rsz;
        if (k.layout.local[0] % sgs == 0)
            cpi.stage.flags |= VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT;
    }
    cpi.layout = k.pl;
    if (exec_stats_) cpi.flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
    const VkResult r = vkCreateComputePipelines(dev_, VK_NULL_HANDLE, 1, &cpi, nullptr, &k.pipe);
    vkDestroyShaderModule(dev_, sm, nullptr);
    VK_CHECK(r);
    if (exec_stats_) print_pipeline_stats(dev_, k.pipe, name);
    return kernels_.emplace(name, k).first->second;
}

}  // namespace sluice::gpu
