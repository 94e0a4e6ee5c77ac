// sluice gpus [--json]: the Vulkan devices `--gpu INDEX` can name, and whether sluice can use them.
#include <cstdio>

#include "app/args.h"
#include "app/verbs.h"
#include "engine/error.h"
#ifdef SLUICE_VULKAN
#include "shaders/vk_runtime.h"
#endif

namespace sluice {

int verb_gpus(int argc, char** argv) {
    Args a(argc, argv, {}, {"--json"});
#ifndef SLUICE_VULKAN
    throw Error("this sluice was built without Vulkan (SLUICE_VULKAN=OFF)");
#else
    std::vector<gpu::DeviceInfo> devs;
    try {
        devs = gpu::list_devices();
    } catch (const gpu::GpuError& e) {
        if (!a.has("--json")) throw;
        std::printf("{\"error\":\"%s\",\"devices\":[]}\n", e.what());
        return 1;
    }
    if (a.has("--json")) std::printf("{\"devices\":[");
    for (size_t i = 0; i < devs.size(); ++i) {
        const gpu::DeviceInfo& d = devs[i];
        if (a.has("--json")) {
            std::printf("%s{\"index\":%d,\"name\":\"%s\",\"usable\":%s,\"software\":%s,\"unified\":%s,\"vram_bytes\":%llu,"
                        "\"subgroup\":%u}", i ? "," : "", d.index, d.name.c_str(), d.usable ? "true" : "false",
                        d.is_cpu ? "true" : "false", d.unified ? "true" : "false", (unsigned long long)d.vram_bytes,
                        d.subgroup_size);
        } else {
            std::printf("%d: %s  %.1f GiB%s%s%s\n", d.index, d.name.c_str(), double(d.vram_bytes) / (1 << 30),
                        d.unified ? ", unified memory" : "", d.is_cpu ? ", software (auto skips it)" : "",
                        d.usable ? "" : (", not usable: " + d.why_not).c_str());
        }
    }
    if (a.has("--json")) std::printf("]}\n");
    if (devs.empty() && !a.has("--json")) std::printf("no Vulkan devices\n");
    return 0;
#endif
}

}  // namespace sluice
