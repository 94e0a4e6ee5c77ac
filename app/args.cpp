#include "app/args.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "engine/error.h"

namespace sluice {

Args::Args(int argc, char** argv, const std::set<std::string>& value_flags,
           const std::set<std::string>& bool_flags, const std::map<std::string, std::string>& aliases) {
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        auto al = aliases.find(a);
        if (al != aliases.end()) a = al->second;
        if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit(uint8_t(a[1])) || a[1] == '.'))) {
            if (value_flags.count(a)) {
                if (i + 1 >= argc) throw Error("option " + a + " needs a value");
                vals_[a] = argv[++i];
            } else if (bool_flags.count(a)) {
                vals_[a] = "1";
            } else {
                throw Error("unknown option '" + a + "'");
            }
        } else {
            pos_.push_back(a);
        }
    }
}

std::string Args::str(const std::string& flag, const std::string& def) const {
    auto it = vals_.find(flag);
    return it == vals_.end() ? def : it->second;
}

std::string Args::required(const std::string& flag) const {
    auto it = vals_.find(flag);
    if (it == vals_.end()) throw Error("option " + flag + " is required");
    return it->second;
}

int64_t Args::i64(const std::string& flag, int64_t def) const {
    auto it = vals_.find(flag);
    if (it == vals_.end()) return def;
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(it->second.c_str(), &end, 10);
    if (errno || end == it->second.c_str() || *end)
        throw Error("option " + flag + " expects an integer, got '" + it->second + "'");
    return v;
}

double Args::f64(const std::string& flag, double def) const {
    auto it = vals_.find(flag);
    if (it == vals_.end()) return def;
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(it->second.c_str(), &end);
    if (errno || end == it->second.c_str() || *end)
        throw Error("option " + flag + " expects a number, got '" + it->second + "'");
    return v;
}

uint64_t Args::size(const std::string& flag, uint64_t def) const {
    auto it = vals_.find(flag);
    if (it == vals_.end()) return def;
    const std::string& s = it->second;
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    double mul = 1;
    std::string suf = end ? end : "";
    if (suf == "K" || suf == "KiB" || suf == "k") mul = 1024.0;
    else if (suf == "M" || suf == "MiB") mul = 1024.0 * 1024;
    else if (suf == "G" || suf == "GiB") mul = 1024.0 * 1024 * 1024;
    else if (suf == "T" || suf == "TiB") mul = 1024.0 * 1024 * 1024 * 1024;
    else if (!suf.empty()) throw Error("option " + flag + " expects a size like 4G or 512M, got '" + s + "'");
    if (end == s.c_str() || v < 0) throw Error("option " + flag + " expects a size like 4G or 512M, got '" + s + "'");
    return uint64_t(v * mul);
}

std::set<std::string> with_gpu_flags(std::set<std::string> value_flags) {
    value_flags.insert({"--gpu", "--gpu-expert-cache", "--gpu-experts", "--gpu-memory"});
    return value_flags;
}

void apply_gpu_flags(const Args& a, ModelOptions& opt) {
    opt.gpu = a.str("--gpu", "auto");
    opt.gpu_expert_cache = a.size("--gpu-expert-cache", 0);
    opt.gpu_memory = a.size("--gpu-memory", 0);
    if (a.has("--gpu-memory") && opt.gpu_memory == 0) throw Error("--gpu-memory must be more than 0");
    const std::string e = a.str("--gpu-experts", "auto");
    if (e == "auto") opt.gpu_experts = GpuExperts::Auto;
    else if (e == "gpu") opt.gpu_experts = GpuExperts::Gpu;
    else if (e == "cpu") opt.gpu_experts = GpuExperts::Cpu;
    else if (e == "split") opt.gpu_experts = GpuExperts::Split;
    else throw Error("--gpu-experts expects auto, gpu, cpu or split, got '" + e + "'");
}

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot read '" + path + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace sluice
