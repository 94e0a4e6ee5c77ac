// The small Vulkan runtime the shaders run on: instance and device choice, buffers (device-local,
// upload, readback), pipelines created on first use from the embedded SPIR-V, and command buffers
// with one checked dispatch(). No other GPU framework; Vulkan calls that fail throw GpuError naming
// the call, its result and file:line.
#pragma once
#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES  // entry points come from vk_loader (dlopen), not from linking libvulkan
#endif
#include <vulkan/vulkan.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"
#include "shaders/spirv.h"

namespace sluice::gpu {

struct GpuError : Error {
    using Error::Error;
};

struct DeviceInfo {
    int index = 0;
    std::string name;
    bool is_cpu = false;       // a software driver (lavapipe): `--gpu auto` skips it
    bool unified = false;      // device-local memory is host-visible: no staging copies
    bool usable = false;       // has what the shaders need (below); else why_not says what is missing
    std::string why_not;
    uint64_t vram_bytes = 0;   // largest device-local heap
    uint32_t subgroup_size = 0;
    uint64_t max_buffer_range = 0;  // maxStorageBufferRange: the largest tensor one binding may hold
    // shaderIntegerDotProduct (VK_KHR_shader_integer_dot_product) and subgroups of 8 or more: the
    // matvec's _q8 variants and its norm tail's int8 mirror (MV_NORM_Q8) can run;
    // int_dot_fast: the hardware has the 4x8-bit mixed-signedness dot (else the driver emulates it).
    bool int_dot = false, int_dot_fast = false;
    // VK_NV_cooperative_matrix with 16x16x16 float16 products into float32 (tensor cores) and
    // shaderFloat16, with int_dot: the mmc_* / mmt_* kernels can run (ops.cpp use_coopmat()).
    bool coopmat = false;
    uint32_t sm_count = 0;  // multiprocessors (VK_NV_shader_sm_builtins), 0 where the driver does not say
    // A device whose subgroup size varies (VK_EXT_subgroup_size_control, min < max): every compute
    // pipeline requires subgroup_size, in full subgroups where the workgroup is a multiple of it, so
    // that gl_SubgroupSize is the size the invocations run in.
    bool pin_subgroup = false;
    uint32_t max_wg_subgroups = 0;  // maxComputeWorkgroupSubgroups: a pinned workgroup holds at most this many
};

// Every Vulkan device of every installed driver. Throws GpuError when there is no Vulkan loader or
// driver at all.
std::vector<DeviceInfo> list_devices();

enum class Mem {
    Device,    // device-local (and host-visible on unified memory: mapped, written in place)
    Upload,    // host-visible, coherent: staging and per-token inputs
    Readback,  // host-visible, preferably cached: results read by the CPU
};

class Context;

// A VkBuffer with its own memory. Move-only.
class Buffer {
public:
    Buffer() = default;
    Buffer(Buffer&& o) noexcept { *this = std::move(o); }
    Buffer& operator=(Buffer&& o) noexcept;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { release(); }

    size_t size() const { return size_; }
    void* mapped() const { return mapped_; }  // nullptr unless host-visible
    VkBuffer handle() const { return buf_; }
    uint32_t memory_flags() const { return flags_; }  // VkMemoryPropertyFlags of its memory type
    explicit operator bool() const { return buf_ != VK_NULL_HANDLE; }

private:
    friend class Context;
    void release();
    VkDevice dev_ = VK_NULL_HANDLE;
    VkBuffer buf_ = VK_NULL_HANDLE;
    VkDeviceMemory mem_ = VK_NULL_HANDLE;
    size_t size_ = 0;
    void* mapped_ = nullptr;
    uint32_t flags_ = 0;
};

// A compute pipeline and what its SPIR-V declares.
struct Kernel {
    std::string name;
    SpirvLayout layout;
    uint32_t per_group[3] = {1, 1, 1};  // work items one workgroup covers, per dimension
    VkDescriptorSetLayout dsl = VK_NULL_HANDLE;
    VkPipelineLayout pl = VK_NULL_HANDLE;
    VkPipeline pipe = VK_NULL_HANDLE;
};

class Context {
public:
    // index: a position in list_devices(). Throws GpuError if it does not exist or is not usable.
    // emulate_discrete: treat a unified-memory device as discrete (device buffers unmapped, uploads
    // through the staging ring), so tests on lavapipe cover the path a discrete GPU takes.
    explicit Context(int index, bool emulate_discrete = false);
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    const DeviceInfo& info() const { return info_; }
    // Device-local bytes this process may still use (VK_EXT_memory_budget where present).
    uint64_t vram_budget() const;

    // `what` names the buffer in errors (out of memory, too large for one binding).
    Buffer alloc(size_t bytes, Mem mem, const std::string& what);
    // Copies host bytes in: memcpy when dst is mapped, else through a staging ring (64 MiB halves,
    // memcpy of one overlapped with the GPU's copy of the other).
    void upload(Buffer& dst, size_t offset, const void* src, size_t n);
    void download(const Buffer& src, size_t offset, void* dst, size_t n);
    // Host memory the GPU copies from without a staging copy (VK_EXT_external_memory_host, discrete
    // GPUs): the pages are pinned until the buffer is destroyed, and must stay mapped and unchanged
    // that long. ptr and bytes multiples of import_alignment(). Throws GpuError where the driver refuses.
    Buffer import_host(const void* ptr, size_t bytes, const std::string& what);
    bool can_import() const { return can_import_; }
    uint64_t import_alignment() const { return import_align_; }
    // A small buffer bound to bindings a dispatch does not use.
    const Buffer& dummy() const { return dummy_; }
    // Descriptor set 1 of the shaders that read the IQ grids (spirv.h iq_grid): made with the first
    // such kernel; dispatch() binds it beside set 0.
    VkDescriptorSet iq_grid_set() const { return grid_set_; }

    const Kernel& kernel(const std::string& name);  // created on first use

    VkDevice device() const { return dev_; }
    VkQueue queue() const { return queue_; }
    uint32_t queue_family() const { return qfam_; }
    double timestamp_ns() const { return ts_period_ns_; }  // 0: no timestamps on the compute queue

private:
    void submit_copy(const Buffer& src, size_t so, const Buffer& dst, size_t d, size_t n, VkFence fence,
                     VkCommandBuffer cb);
    uint32_t memory_type(uint32_t bits, Mem mem) const;

    DeviceInfo info_;
    VkInstance inst_ = VK_NULL_HANDLE;
    VkPhysicalDevice phys_ = VK_NULL_HANDLE;
    VkDevice dev_ = VK_NULL_HANDLE;
    VkQueue queue_ = VK_NULL_HANDLE;
    uint32_t qfam_ = 0;
    bool has_budget_ = false;
    bool exec_stats_ = false;  // SLUICE_GPU_STATS=1 and the driver has VK_KHR_pipeline_executable_properties
    bool can_import_ = false;  // VK_EXT_external_memory_host on a discrete GPU
    uint64_t import_align_ = 4096;  // its minImportedHostPointerAlignment
    double ts_period_ns_ = 0;
    VkPhysicalDeviceMemoryProperties memprops_{};
    VkCommandPool pool_ = VK_NULL_HANDLE;
    // Staging ring for uploads to device-only memory.
    Buffer staging_[2];
    VkCommandBuffer staging_cb_[2] = {};
    VkFence staging_fence_[2] = {};
    Buffer dummy_;
    void make_iq_grids();
    Buffer grid_buf_;
    VkDescriptorSetLayout grid_dsl_ = VK_NULL_HANDLE;
    VkDescriptorPool grid_pool_ = VK_NULL_HANDLE;
    VkDescriptorSet grid_set_ = VK_NULL_HANDLE;
    std::map<std::string, Kernel> kernels_;
};

// Work items of a dispatch; dispatch() divides by the kernel's items per workgroup.
struct Items {
    uint32_t x = 1, y = 1, z = 1;
};

// A command buffer recorded once and submitted any number of times (per-token values live in
// buffers the host writes between submits, not in the recording).
class Cmd {
public:
    explicit Cmd(Context& ctx);
    ~Cmd();
    Cmd(const Cmd&) = delete;
    Cmd& operator=(const Cmd&) = delete;

    Context& context() { return ctx_; }
    void begin();  // starts a new recording (drops the previous one)
    // Runs `kernel` over `items`. Checks that `bindings` are as many as the shader declares and that
    // the push constants are the size of its push-constant block; waits for the previous dispatch
    // unless independent() was called since.
    template <class P>
    void dispatch(const std::string& kernel, std::initializer_list<const Buffer*> bindings, const P& push, Items items) {
        dispatch_raw(kernel, bindings, &push, sizeof(P), items);
    }
    void dispatch_raw(const std::string& kernel, std::initializer_list<const Buffer*> bindings, const void* push,
                      uint32_t push_bytes, Items items);
    // The next dispatch does not depend on the one before (e.g. q, k and v projections).
    void independent() { skip_barrier_ = true; }
    void copy(const Buffer& src, size_t src_off, const Buffer& dst, size_t dst_off, size_t n);
    void barrier();  // everything recorded so far is visible to what follows
    void end();
    void submit();
    void wait();     // for the last submit
    void run() { submit(); wait(); }
    double last_gpu_ms() const { return gpu_ms_; }  // time between the recording's first and last commands
    // SLUICE_GPU_PROFILE=1 in the environment: a timestamp after every dispatch and copy, summed per
    // (kernel, workgroups) over every submit (=warm: all but the first); the table goes to stderr when
    // the Cmd is destroyed.
    // Dependent dispatches are timed from the previous timestamp, so a row includes its barrier.
    // note(): words added to the next dispatch's row name (e.g. a matvec's shape), when profiling.
    bool profiling() const { return prof_ != nullptr; }
    void note(const std::string& words) { note_ = words; }

private:
    Context& ctx_;
    VkCommandPool pool_ = VK_NULL_HANDLE;
    VkCommandBuffer cb_ = VK_NULL_HANDLE;
    VkFence fence_ = VK_NULL_HANDLE;
    VkQueryPool queries_ = VK_NULL_HANDLE;
    struct Profile;
    std::unique_ptr<Profile> prof_;
    void mark(const std::string& label);
    void add_pool();
    std::vector<VkDescriptorPool> dpools_;
    size_t pool_index_ = 0;     // pool the next descriptor set comes from
    uint32_t sets_in_pool_ = 0; // sets taken from it
    bool skip_barrier_ = true, pending_ = false, recording_ = false;
    double gpu_ms_ = 0;
    std::string note_;
};

}  // namespace sluice::gpu
