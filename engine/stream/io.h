// Many reads of one file in flight at once: a pool of threads doing pread (the default, measured
// faster here), or io_uring. Expert streaming submits the slabs a router picked and computes each expert as soon as
// its reads complete.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sluice {

struct ReadReq {
    uint8_t* dst;
    uint64_t offset;
    uint64_t len;     // bytes to read
    uint64_t need;    // bytes that must arrive (< len when an aligned read may run past end of file)
    uint64_t tag;     // returned with the completion
};

struct ReadDone {
    uint64_t tag = 0;
    int err = 0;          // 0, an errno, or kShortRead (end of file before `need` bytes)
    uint64_t offset = 0;  // where the failing part started (for messages)
    uint64_t bytes = 0;   // bytes read
};
constexpr int kShortRead = -1;
// "Input/output error", or "unexpected end of file (truncated while open?)".
std::string read_error_text(int err);

// Where routed experts come from (--io). Auto: mmap when the file fits the memory there is (budget,
// cgroup limit, RAM), else the streaming mode measured best on this kind of machine (bench/B30.md).
enum class IoMode { Auto, Mmap, PageCache, Direct };
const char* io_mode_name(IoMode m);  // "auto", "mmap", "page-cache", "direct"

enum class IoEngine { Auto, Uring, Pread };
const char* io_engine_name(IoEngine e);

class ReadQueue {
public:
    virtual ~ReadQueue() = default;
    virtual const char* name() const = 0;  // "io_uring" / "pread pool"
    // Starts the reads; never blocks on the disk.
    virtual void submit(const ReadReq* reqs, size_t n) = 0;
    // Appends completions to `out`: waits for at least one when `block` and any read is in flight.
    // Short reads are continued internally; a completion means done or failed.
    virtual size_t reap(std::vector<ReadDone>& out, bool block) = 0;
    virtual int64_t in_flight() const = 0;
};

// Test hook: returns an errno to fail the read of [offset, offset + len) with, or 0.
using ReadFault = std::function<int(uint64_t offset, uint64_t len)>;

// `fd` stays owned by the caller. Auto: the pread pool (see io.cpp for the measurement).
std::unique_ptr<ReadQueue> make_read_queue(int fd, IoEngine engine, int depth, ReadFault fault = {});

}  // namespace sluice
