// The resident copy of an unmapped GGUF: the tensors a model keeps in RAM (dense weights, router,
// norms, embeddings), read at their file offsets into one reserved address range, so data(t) is the
// same expression as for a mapping. Tensors left out (routed experts) stay inaccessible.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "engine/gguf/gguf.h"

namespace sluice::gguf {

namespace {

constexpr uint64_t kPage = 4096;  // also the O_DIRECT alignment used everywhere in sluice

// Reads [off, off + n) into dst; a read ending at end of file early is fine (the page-rounded tail of
// the last tensor), anything else short is an Error.
void read_range(int fd, uint8_t* dst, uint64_t n, uint64_t off, uint64_t file_size, const std::string& path) {
    const uint64_t want = std::min(n, file_size > off ? file_size - off : 0);
    uint64_t done = 0;
    while (done < want) {
        const size_t chunk = size_t(std::min<uint64_t>(n - done, 64u << 20));
        ssize_t r = ::pread(fd, dst + done, chunk, off_t(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            throw Error("reading '" + path + "' at offset " + std::to_string(off + done) + ": " + std::strerror(errno));
        if (r == 0)
            throw Error("reading '" + path + "' at offset " + std::to_string(off + done) +
                        ": unexpected end of file (truncated while open?)");
        done += uint64_t(r);
    }
}

}  // namespace

uint64_t File::load_resident(const std::function<bool(const TensorInfo&)>& keep, bool direct) {
    if (mapped_) throw Error(path_ + ": load_resident() is for files opened without mapping");
    if (resident_bytes_) throw Error(path_ + ": load_resident() called twice");
    // Page-rounded ranges of the kept tensors, merged where they touch: one read per run of dense
    // tensors (in llama.cpp's layout, one per layer: attention, norms and router lie together).
    std::vector<std::pair<uint64_t, uint64_t>> runs;
    for (const TensorInfo& t : tensors_) {
        if (t.nbytes == 0 || !keep(t)) continue;
        runs.push_back({t.offset / kPage * kPage, (t.offset + t.nbytes + kPage - 1) / kPage * kPage});
    }
    std::sort(runs.begin(), runs.end());
    std::vector<std::pair<uint64_t, uint64_t>> merged;
    for (const auto& r : runs) {
        if (!merged.empty() && r.first <= merged.back().second)
            merged.back().second = std::max(merged.back().second, r.second);
        else
            merged.push_back(r);
    }
    int rfd = fd_;
    if (direct) {  // own open file for O_DIRECT; filesystems without it (tmpfs) fall back to buffered
        const std::string self = "/proc/self/fd/" + std::to_string(fd_);
        int d = ::open(self.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
        if (d >= 0) rfd = d;
    }
    uint8_t* base = const_cast<uint8_t*>(map_);
    const uint64_t reserved = (file_size_ + kPage - 1) / kPage * kPage;
    try {
        for (const auto& [a, b] : merged) {
            const uint64_t end = std::min(b, reserved);
            if (mprotect(base + a, size_t(end - a), PROT_READ | PROT_WRITE) != 0)
                throw Error("cannot allocate " + std::to_string(end - a) + " bytes for the weights of '" + path_ +
                            "': " + std::strerror(errno));
            read_range(rfd, base + a, end - a, a, file_size_, path_);
            mprotect(base + a, size_t(end - a), PROT_READ);
            resident_bytes_ += end - a;
        }
    } catch (...) {
        if (rfd != fd_) ::close(rfd);
        throw;
    }
    if (rfd != fd_) ::close(rfd);
    return resident_bytes_;
}

}  // namespace sluice::gguf
