// Cmd: recording, barriers, submission and the wait of a command buffer (vk_runtime.h), and
// SLUICE_GPU_PROFILE's per-kernel timestamps.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "shaders/vk_check.h"
#include "shaders/vk_loader.h"

namespace sluice::gpu {

using namespace vk;

// ---- Cmd

struct Cmd::Profile {
    static constexpr uint32_t kMarks = 4096;
    std::vector<std::string> labels;  // of this recording's marks
    struct Row {
        uint64_t n = 0;
        double ns = 0;
        size_t order = 0;  // first seen: the table keeps recording order
    };
    std::unordered_map<std::string, Row> rows;
    uint64_t submits = 0;
    double total_ns = 0;
    bool skip_first = false;  // SLUICE_GPU_PROFILE=warm: not the recording's first submit (first touches)
};

Cmd::Cmd(Context& ctx) : ctx_(ctx) {
    VkDevice dev = ctx_.device();
    VkCommandPoolCreateInfo pci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pci.queueFamilyIndex = ctx_.queue_family();
    VK_CHECK(vkCreateCommandPool(dev, &pci, nullptr, &pool_));
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = pool_;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    VK_CHECK(vkAllocateCommandBuffers(dev, &ai, &cb_));
    VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    fci.flags = VK_FENCE_CREATE_SIGNALED_BIT;
    VK_CHECK(vkCreateFence(dev, &fci, nullptr, &fence_));
    if (ctx_.timestamp_ns() > 0) {
        const char* env = std::getenv("SLUICE_GPU_PROFILE");
        if (env && *env && std::strcmp(env, "0") != 0) {
            prof_ = std::make_unique<Profile>();
            prof_->skip_first = std::strcmp(env, "warm") == 0;
        }
        VkQueryPoolCreateInfo qci{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
        qci.queryType = VK_QUERY_TYPE_TIMESTAMP;
        qci.queryCount = prof_ ? 2 + Profile::kMarks : 2;
        VK_CHECK(vkCreateQueryPool(dev, &qci, nullptr, &queries_));
    }
}

void Cmd::mark(const std::string& label) {
    if (!prof_ || prof_->labels.size() == Profile::kMarks) return;
    vkCmdWriteTimestamp(cb_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, 2 + uint32_t(prof_->labels.size()));
    prof_->labels.push_back(label);
}

Cmd::~Cmd() {
    if (prof_ && prof_->submits) {
        std::vector<std::pair<std::string, Profile::Row>> rows(prof_->rows.begin(), prof_->rows.end());
        std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.order < b.second.order; });
        const double per = 1e-3 / double(prof_->submits);
        std::fprintf(stderr, "gpu profile: %llu submits, %.1f us per submit (first to last timestamp)\n",
                     (unsigned long long)prof_->submits, prof_->total_ns * per);
        std::fprintf(stderr, "%10s %8s %7s  %s\n", "us/submit", "n/submit", "us each", "kernel [workgroups]");
        for (const auto& [label, r] : rows)
            std::fprintf(stderr, "%10.1f %8.1f %7.2f  %s\n", r.ns * per, double(r.n) / double(prof_->submits),
                         r.ns * 1e-3 / double(r.n), label.c_str());
    }
    VkDevice dev = ctx_.device();
    vkWaitForFences(dev, 1, &fence_, VK_TRUE, UINT64_MAX);
    for (VkDescriptorPool p : dpools_) vkDestroyDescriptorPool(dev, p, nullptr);
    if (queries_) vkDestroyQueryPool(dev, queries_, nullptr);
    vkDestroyFence(dev, fence_, nullptr);
    vkDestroyCommandPool(dev, pool_, nullptr);
}

namespace {
constexpr uint32_t kSetsPerPool = 256, kMaxBindings = 12;
}

void Cmd::begin() {
    VkDevice dev = ctx_.device();
    VK_CHECK(vkWaitForFences(dev, 1, &fence_, VK_TRUE, UINT64_MAX));
    VK_CHECK(vkResetCommandBuffer(cb_, 0));
    for (VkDescriptorPool p : dpools_) VK_CHECK(vkResetDescriptorPool(dev, p, 0));
    pool_index_ = 0;
    sets_in_pool_ = 0;
    if (dpools_.empty()) add_pool();
    VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    VK_CHECK(vkBeginCommandBuffer(cb_, &bi));
    if (prof_) prof_->labels.clear();
    if (queries_) {
        vkCmdResetQueryPool(cb_, queries_, 0, prof_ ? 2 + Profile::kMarks : 2);
        vkCmdWriteTimestamp(cb_, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, queries_, 0);
    }
    recording_ = true;
    pending_ = false;
    skip_barrier_ = false;
}

void Cmd::add_pool() {
    VkDescriptorPoolSize ps{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kSetsPerPool * kMaxBindings};
    VkDescriptorPoolCreateInfo dpci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
    dpci.maxSets = kSetsPerPool;
    dpci.poolSizeCount = 1;
    dpci.pPoolSizes = &ps;
    VkDescriptorPool p;
    VK_CHECK(vkCreateDescriptorPool(ctx_.device(), &dpci, nullptr, &p));
    dpools_.push_back(p);
}

void Cmd::barrier() {
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                       VK_ACCESS_TRANSFER_WRITE_BIT;
    const VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(cb_, st, st, 0, 1, &mb, 0, nullptr, 0, nullptr);
    pending_ = false;
}

void Cmd::dispatch_raw(const std::string& name, std::initializer_list<const Buffer*> bindings, const void* push,
                       uint32_t push_bytes, Items items) {
    if (!recording_) throw GpuError("dispatch of " + name + " outside begin()/end()");
    const Kernel& k = ctx_.kernel(name);
    if (bindings.size() != k.layout.n_bindings)
        throw GpuError(name + ": " + std::to_string(bindings.size()) + " buffers bound; the shader declares " +
                       std::to_string(k.layout.n_bindings));
    if (push_bytes != k.layout.push_bytes)
        throw GpuError(name + ": push constants of " + std::to_string(push_bytes) + " bytes; the shader's block has " +
                       std::to_string(k.layout.push_bytes));
    const uint32_t n[3] = {items.x, items.y, items.z};
    uint32_t groups[3];
    for (int d = 0; d < 3; ++d) {
        groups[d] = (n[d] + k.per_group[d] - 1) / k.per_group[d];
        if (groups[d] > 65535 && d > 0) throw GpuError(name + ": " + std::to_string(groups[d]) + " workgroups in y/z");
    }
    if (groups[0] == 0 || groups[1] == 0 || groups[2] == 0) return;

    VkDevice dev = ctx_.device();
    if (sets_in_pool_ == kSetsPerPool) {  // next pool: kept across begin() and reused
        if (++pool_index_ == dpools_.size()) add_pool();
        sets_in_pool_ = 0;
    }
    if (bindings.size() > kMaxBindings) throw GpuError(name + ": more than " + std::to_string(kMaxBindings) + " bindings");
    VkDescriptorSetAllocateInfo dai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    dai.descriptorPool = dpools_[pool_index_];
    dai.descriptorSetCount = 1;
    dai.pSetLayouts = &k.dsl;
    VkDescriptorSet set;
    VK_CHECK(vkAllocateDescriptorSets(dev, &dai, &set));
    ++sets_in_pool_;
    VkDescriptorBufferInfo infos[kMaxBindings];
    VkWriteDescriptorSet writes[kMaxBindings];
    uint32_t i = 0;
    for (const Buffer* b : bindings) {
        if (!b || !*b) throw GpuError(name + ": binding " + std::to_string(i) + " has no buffer");
        infos[i] = {b->handle(), 0, VK_WHOLE_SIZE};
        writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, nullptr, set, i, 0, 1, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                     nullptr, &infos[i], nullptr};
        ++i;
    }
    vkUpdateDescriptorSets(dev, i, writes, 0, nullptr);

    if (pending_ && !skip_barrier_) barrier();
    skip_barrier_ = false;
    vkCmdBindPipeline(cb_, VK_PIPELINE_BIND_POINT_COMPUTE, k.pipe);
    const VkDescriptorSet sets[2] = {set, ctx_.iq_grid_set()};
    vkCmdBindDescriptorSets(cb_, VK_PIPELINE_BIND_POINT_COMPUTE, k.pl, 0, k.layout.iq_grid ? 2 : 1, sets, 0, nullptr);
    if (push_bytes) vkCmdPushConstants(cb_, k.pl, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes, push);
    vkCmdDispatch(cb_, groups[0], groups[1], groups[2]);
    pending_ = true;
    if (prof_)
        mark(name + " [" + std::to_string(groups[0]) + "," + std::to_string(groups[1]) + "," + std::to_string(groups[2]) + "]" +
             (note_.empty() ? "" : " " + note_));
    note_.clear();
}

void Cmd::copy(const Buffer& src, size_t src_off, const Buffer& dst, size_t dst_off, size_t n) {
    if (src_off + n > src.size() || dst_off + n > dst.size()) throw GpuError("copy past the end of a buffer");
    if (pending_ && !skip_barrier_) barrier();
    skip_barrier_ = false;
    VkBufferCopy region{src_off, dst_off, n};
    vkCmdCopyBuffer(cb_, src.handle(), dst.handle(), 1, &region);
    pending_ = true;
    if (prof_) mark("copy " + std::to_string(n) + " B");
}

void Cmd::end() {
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(cb_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
    if (queries_) vkCmdWriteTimestamp(cb_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, 1);
    VK_CHECK(vkEndCommandBuffer(cb_));
    recording_ = false;
}

void Cmd::submit() {
    if (recording_) throw GpuError("submit before end()");
    VkDevice dev = ctx_.device();
    VK_CHECK(vkWaitForFences(dev, 1, &fence_, VK_TRUE, UINT64_MAX));
    VK_CHECK(vkResetFences(dev, 1, &fence_));
    VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cb_;
    VK_CHECK(vkQueueSubmit(ctx_.queue(), 1, &si, fence_));
}

void Cmd::wait() {
    // Decode waits for one short submit per token; a blocking wait wakes up tens of microseconds late.
    // So sleep until shortly before the last run's GPU time is up, then poll (for at most 2 ms more).
    VkDevice dev = ctx_.device();
    const double expect_ms = gpu_ms_;
    bool done = false;
    if (expect_ms > 0 && expect_ms < 100) {
        if (expect_ms > 0.5) {
            const VkResult r = vkWaitForFences(dev, 1, &fence_, VK_TRUE, uint64_t((expect_ms - 0.3) * 1e6));
            if (r != VK_TIMEOUT) VK_CHECK(r);
            done = r == VK_SUCCESS;
        }
        const auto t0 = std::chrono::steady_clock::now();
        while (!done && std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(2)) {
            const VkResult r = vkGetFenceStatus(dev, fence_);
            if (r != VK_NOT_READY) VK_CHECK(r);
            done = r == VK_SUCCESS;
        }
    }
    if (!done) VK_CHECK(vkWaitForFences(dev, 1, &fence_, VK_TRUE, UINT64_MAX));
    if (queries_) {
        uint64_t ts[2];
        if (vkGetQueryPoolResults(ctx_.device(), queries_, 0, 2, sizeof ts, ts, 8, VK_QUERY_RESULT_64_BIT) == VK_SUCCESS)
            gpu_ms_ = double(ts[1] - ts[0]) * ctx_.timestamp_ns() * 1e-6;
        if (prof_ && prof_->skip_first) {
            prof_->skip_first = false;
        } else if (prof_ && !prof_->labels.empty()) {
            const size_t n = prof_->labels.size();
            std::vector<uint64_t> t(n);
            if (vkGetQueryPoolResults(ctx_.device(), queries_, 2, uint32_t(n), n * 8, t.data(), 8,
                                      VK_QUERY_RESULT_64_BIT) == VK_SUCCESS) {
                uint64_t prev = ts[0];
                for (size_t i = 0; i < n; ++i) {
                    Profile::Row& r = prof_->rows[prof_->labels[i]];
                    if (r.n == 0) r.order = prof_->rows.size();
                    ++r.n;
                    r.ns += double(t[i] > prev ? t[i] - prev : 0) * ctx_.timestamp_ns();
                    prev = std::max(prev, t[i]);
                }
                ++prof_->submits;
                prof_->total_ns += double(ts[1] - ts[0]) * ctx_.timestamp_ns();
            }
        }
    }
}

}  // namespace sluice::gpu
