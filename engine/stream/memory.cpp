#include "engine/stream/memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace sluice {

namespace {

uint64_t read_number(const std::string& path) {
    std::ifstream in(path);
    std::string s;
    if (!(in >> s) || s == "max") return 0;
    return std::strtoull(s.c_str(), nullptr, 10);
}

// The text of a small /proc file. Its descriptor stays open: the statistics read /proc/self/io and
// statm around every token, and an open + close costs more than the read (tens of microseconds).
std::string proc_text(const char* path) {
    struct Fd {
        std::string path;
        int fd;
    };
    static thread_local std::vector<Fd> open_fds;
    int fd = -1;
    for (const Fd& f : open_fds)
        if (f.path == path) fd = f.fd;
    if (fd < 0) {
        fd = ::open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return {};
        open_fds.push_back({path, fd});
    }
    char buf[4096];
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

// "Key:   123 kB" lines of /proc files.
uint64_t proc_field(const char* path, const char* key) {
    const std::string text = proc_text(path);
    const std::string k = std::string(key) + ":";
    for (size_t at = 0; at < text.size();) {
        if (text.compare(at, k.size(), k) == 0) return std::strtoull(text.c_str() + at + k.size(), nullptr, 10);
        const size_t nl = text.find('\n', at);
        if (nl == std::string::npos) break;
        at = nl + 1;
    }
    return 0;
}

}  // namespace

uint64_t rss_bytes() {
    const std::string text = proc_text("/proc/self/statm");
    unsigned long long size = 0, resident = 0;
    if (std::sscanf(text.c_str(), "%llu %llu", &size, &resident) != 2) return 0;
    return resident * uint64_t(sysconf(_SC_PAGESIZE));
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
