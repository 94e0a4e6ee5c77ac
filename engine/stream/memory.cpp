#include "engine/stream/memory.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace sluice {

namespace {

uint64_t read_number(const std::string& path) {
    std::ifstream in(path);
    std::string s;
    if (!(in >> s) || s == "max") return 0;
    return std::strtoull(s.c_str(), nullptr, 10);
}

// "Key:   123 kB" lines of /proc files.
uint64_t proc_field(const char* path, const char* key) {
    FILE* f = std::fopen(path, "r");
    if (!f) return 0;
    char line[256];
    uint64_t v = 0;
    const size_t n = std::strlen(key);
    while (std::fgets(line, sizeof line, f))
        if (!std::strncmp(line, key, n) && line[n] == ':') {
            v = std::strtoull(line + n + 1, nullptr, 10);
            break;
        }
    std::fclose(f);
    return v;
}

}  // namespace

uint64_t rss_bytes() {
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, resident = 0;
    const int n = std::fscanf(f, "%llu %llu", &size, &resident);
    std::fclose(f);
    return n == 2 ? resident * uint64_t(sysconf(_SC_PAGESIZE)) : 0;
}

uint64_t cgroup_memory_limit() {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    uint64_t best = 0;
    auto take = [&](uint64_t v) {
        // v1 reports "no limit" as a huge number
        if (v > 0 && v < (uint64_t(1) << 60) && (best == 0 || v < best)) best = v;
    };
    while (std::getline(in, line)) {
        const size_t a = line.find(':'), b = line.find(':', a + 1);
        if (a == std::string::npos || b == std::string::npos) continue;
        const std::string ctrl = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
        // The group and its ancestors: the tightest limit applies.
        auto walk = [&](const std::string& root, const char* file) {
            for (std::string p = path;; p = p.substr(0, p.rfind('/'))) {
                take(read_number(root + p + "/" + file));
                if (p.empty() || p == "/") break;
            }
        };
        if (ctrl.empty())
            walk("/sys/fs/cgroup", "memory.max");
        else if (ctrl.find("memory") != std::string::npos)
            walk("/sys/fs/cgroup/memory", "memory.limit_in_bytes");
    }
    return best;
}

uint64_t ram_bytes() { return proc_field("/proc/meminfo", "MemTotal") * 1024; }

uint64_t os_read_bytes() { return proc_field("/proc/self/io", "read_bytes"); }

}  // namespace sluice
