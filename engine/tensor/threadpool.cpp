// Chunks are claimed from one atomic word holding (job generation, chunk count, next chunk), so a
// worker that wakes late can never run a chunk of a job that has finished: its claim fails. The
// caller runs chunks too and waits only for claimed chunks, never for a sleeping worker to wake.
#include "engine/tensor/threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SLUICE_PAUSE() _mm_pause()
#else
#define SLUICE_PAUSE() std::this_thread::yield()
#endif

namespace sluice {

namespace {

// Claim word: generation (20 bits) | chunk count (22) | next chunk (22).
constexpr int kIdxBits = 22;
constexpr uint64_t kIdxMask = (uint64_t(1) << kIdxBits) - 1;
constexpr uint64_t kGenMask = (uint64_t(1) << 20) - 1;
constexpr int64_t kChunksPerThread = 4;  // some slack for a thread the OS delays
// A decode step runs hundreds of matvecs a few µs apart; waking from a futex costs tens of µs.
constexpr auto kSpin = std::chrono::microseconds(200);

thread_local int t_index = 0;          // 0 on threads that are not pool workers
thread_local bool t_in_parallel = false;

}  // namespace

struct ThreadPool::Impl {
    int n = 1;
    std::vector<std::thread> threads;

    // The current job: written by the caller before it publishes the claim word.
    const std::function<void(int64_t, int64_t, int)>* fn = nullptr;
    int64_t total = 0, chunk = 0;
    uint64_t gen = 0;

    alignas(64) std::atomic<uint64_t> claim{0};
    alignas(64) std::atomic<int64_t> done{0};
    alignas(64) std::atomic<uint32_t> epoch{0};  // bumped per job; sleeping workers wait on it
    std::atomic<int> sleepers{0};
    std::atomic<bool> stop{false};
    std::atomic<bool> failed{false};
    std::mutex err_mu;
    std::exception_ptr err;
    std::mutex call_mu;  // one parallel_for at a time

    void run_chunks(int tid) {
        uint64_t w = claim.load(std::memory_order_acquire);
        for (;;) {
            const uint64_t idx = w & kIdxMask, count = (w >> kIdxBits) & kIdxMask;
            if (idx >= count) return;
            if (!claim.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire))
                continue;
            const int64_t b = int64_t(idx) * chunk, e = std::min(total, b + chunk);
            if (!failed.load(std::memory_order_relaxed)) {
                try {
                    (*fn)(b, e, tid);
                } catch (...) {
                    std::lock_guard<std::mutex> lk(err_mu);
                    if (!err) err = std::current_exception();
                    failed.store(true, std::memory_order_relaxed);
                }
            }
            done.fetch_add(1, std::memory_order_release);
            w = claim.load(std::memory_order_acquire);
        }
    }

    void worker(int tid) {
        t_index = tid;
        t_in_parallel = true;  // a nested parallel_for from fn runs inline
        // Start from the pool's initial epoch, not the current one: jobs (or the destructor) may
        // have come before this thread first ran.
        uint32_t seen = 0;
        for (;;) {
            if (stop.load(std::memory_order_acquire)) return;
            run_chunks(tid);
            const auto t0 = std::chrono::steady_clock::now();
            for (int spins = 0; epoch.load(std::memory_order_acquire) == seen; ++spins) {
                SLUICE_PAUSE();
                if ((spins & 255) == 255 && std::chrono::steady_clock::now() - t0 > kSpin) {
                    sleepers.fetch_add(1, std::memory_order_seq_cst);
                    epoch.wait(seen, std::memory_order_seq_cst);
                    sleepers.fetch_sub(1, std::memory_order_relaxed);
                }
            }
            seen = epoch.load(std::memory_order_acquire);
        }
    }
};

ThreadPool::ThreadPool(int n_threads) : impl_(new Impl) {
    if (n_threads < 1) throw std::invalid_argument("ThreadPool: n_threads must be >= 1");
    impl_->n = n_threads;
    for (int i = 1; i < n_threads; ++i) impl_->threads.emplace_back([this, i] { impl_->worker(i); });
}

ThreadPool::~ThreadPool() {
    impl_->stop.store(true, std::memory_order_release);
    impl_->epoch.fetch_add(1, std::memory_order_seq_cst);
    impl_->epoch.notify_all();
    for (std::thread& t : impl_->threads) t.join();
    delete impl_;
}

int ThreadPool::size() const { return impl_->n; }

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    Impl& p = *impl_;
    if (p.n == 1 || n <= grain || t_in_parallel) {
        fn(0, n, t_index);
        return;
    }
    std::lock_guard<std::mutex> lk(p.call_mu);
    // Chunks are multiples of grain, about kChunksPerThread per thread.
    const int64_t target = (n + p.n * kChunksPerThread - 1) / (p.n * kChunksPerThread);
    const int64_t chunk = (std::max(target, grain) + grain - 1) / grain * grain;
    const int64_t count = (n + chunk - 1) / chunk;

    p.fn = &fn;
    p.total = n;
    p.chunk = chunk;
    p.done.store(0, std::memory_order_relaxed);
    p.failed.store(false, std::memory_order_relaxed);
    p.err = nullptr;
    p.gen = (p.gen + 1) & kGenMask;
    p.claim.store(p.gen << (2 * kIdxBits) | uint64_t(count) << kIdxBits, std::memory_order_release);
    p.epoch.fetch_add(1, std::memory_order_seq_cst);
    if (p.sleepers.load(std::memory_order_seq_cst) > 0) p.epoch.notify_all();

    t_in_parallel = true;
    p.run_chunks(0);
    t_in_parallel = false;
    // Only chunks already claimed by a worker can still be running.
    for (int spins = 0; p.done.load(std::memory_order_acquire) != count; ++spins) {
        if (spins < 4096) SLUICE_PAUSE();
        else std::this_thread::yield();
    }
    p.fn = nullptr;
    if (p.err) std::rethrow_exception(p.err);
}

}  // namespace sluice
