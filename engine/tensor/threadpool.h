// A small persistent thread pool for data-parallel loops: the caller's thread works too, and workers
// spin briefly before sleeping so the many short matvecs of a decode step don't pay a wake-up each.
#pragma once
#include <cstdint>
#include <functional>

namespace sluice {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);  // n_threads >= 1, including the calling thread
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const;
    // Runs fn(begin, end, thread_index) over [0, n) in chunks of at least `grain`; returns when all
    // chunks are done. Exceptions from fn are rethrown on the caller's thread.
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

private:
    struct Impl;
    Impl* impl_;
};

}  // namespace sluice
