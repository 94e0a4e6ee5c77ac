#include "engine/demo_model.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "engine/error.h"

namespace sluice {
namespace fs = std::filesystem;

std::vector<std::string> demo_model_candidates() {
    std::vector<std::string> out;
    // An explicit SLUICE_DEMO_MODEL is the only place looked in.
    if (const char* env = std::getenv("SLUICE_DEMO_MODEL"); env && *env) return {env};
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const fs::path dir = exe.parent_path();
        out.push_back((dir / ".." / "share" / "sluice" / "demo.gguf").lexically_normal().string());
        out.push_back((dir / ".." / "models" / "demo.gguf").lexically_normal().string());
    }
#ifdef SLUICE_DEMO_SOURCE_PATH
    out.push_back(SLUICE_DEMO_SOURCE_PATH);
#endif
    return out;
}

std::string demo_model_path() {
    const auto candidates = demo_model_candidates();
    std::string looked;
    for (const auto& c : candidates) {
        std::error_code ec;
        if (fs::is_regular_file(c, ec)) return c;
        looked += "\n  " + c;
    }
    throw Error("the demo model (demo.gguf) is missing; looked in:" + looked +
                "\nset SLUICE_DEMO_MODEL to its path, or give a model file");
}

std::string resolve_model_path(const std::string& arg) {
    std::error_code ec;
    if (arg == "demo" && !fs::exists(arg, ec)) return demo_model_path();
    return arg;
}

}  // namespace sluice
