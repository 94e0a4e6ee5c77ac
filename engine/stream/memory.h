// What this process and machine hold, measured: resident set, the cgroup's memory limit, RAM, and what
// the kernel read from storage on our behalf. Linux /proc and /sys; 0 where unavailable.
#pragma once
#include <cstdint>

namespace sluice {

uint64_t rss_bytes();             // /proc/self/statm resident pages * page size
uint64_t cgroup_memory_limit();   // memory.max (v2) or memory.limit_in_bytes (v1); 0 = none
uint64_t ram_bytes();             // MemTotal
uint64_t os_read_bytes();         // /proc/self/io read_bytes

}  // namespace sluice
