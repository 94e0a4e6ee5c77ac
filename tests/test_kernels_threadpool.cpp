// ThreadPool: every index exactly once over many calls, grain, thread indices, exceptions, nesting,
// and the cost of a call (printed; a decode step makes hundreds).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engine/tensor/threadpool.h"

using namespace sluice;

TEST(ThreadPool, EveryIndexOnceOverManyCalls) {
    for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        EXPECT_EQ(pool.size(), threads);
        std::vector<std::atomic<int>> hits(5000);
        for (int call = 0; call < 3000; ++call) {
            const int64_t n = 1 + (call * 7919) % 5000, grain = 1 + call % 13;
            pool.parallel_for(n, grain, [&](int64_t b, int64_t e, int) {
                for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1, std::memory_order_relaxed);
            });
            for (int64_t i = 0; i < n; ++i) {
                ASSERT_EQ(hits[size_t(i)].load(), 1) << "call " << call << " index " << i;
                hits[size_t(i)].store(0);
            }
        }
    }
}

TEST(ThreadPool, GrainAndThreadIndex) {
    ThreadPool pool(2);
    for (int64_t grain : {1, 3, 16, 100}) {
        for (int64_t n : {1, 5, 99, 100, 101, 1000, 12345}) {
            std::mutex mu;
            std::vector<std::pair<int64_t, int64_t>> chunks;
            pool.parallel_for(n, grain, [&](int64_t b, int64_t e, int t) {
                ASSERT_GE(t, 0);
                ASSERT_LT(t, 2);
                std::lock_guard<std::mutex> lk(mu);
                chunks.emplace_back(b, e);
            });
            int64_t covered = 0;
            for (auto [b, e] : chunks) {
                EXPECT_EQ(b % grain, 0) << "n " << n << " grain " << grain;
                EXPECT_TRUE(e - b >= grain || e == n) << "chunk [" << b << "," << e << ") grain " << grain;
                covered += e - b;
            }
            EXPECT_EQ(covered, n);
        }
    }
}

TEST(ThreadPool, BothThreadsWork) {
    ThreadPool pool(2);
    std::set<std::thread::id> seen;
    std::mutex mu;
    for (int i = 0; i < 200 && seen.size() < 2; ++i)
        pool.parallel_for(64, 1, [&](int64_t, int64_t, int) {
            std::this_thread::sleep_for(std::chrono::microseconds(50));
            std::lock_guard<std::mutex> lk(mu);
            seen.insert(std::this_thread::get_id());
        });
    EXPECT_EQ(seen.size(), 2u);
}

TEST(ThreadPool, ExceptionsPropagateAndPoolStaysUsable) {
    ThreadPool pool(2);
    for (int rep = 0; rep < 50; ++rep) {
        EXPECT_THROW(pool.parallel_for(1000, 1,
                                       [&](int64_t b, int64_t e, int) {
                                           if (b <= 500 && 500 < e) throw std::runtime_error("chunk failed");
                                       }),
                     std::runtime_error);
        std::atomic<int64_t> sum{0};
        pool.parallel_for(1000, 1, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) sum += i;
        });
        EXPECT_EQ(sum.load(), 999 * 1000 / 2);
    }
    // Thrown on a single-threaded pool and on the inline path too.
    ThreadPool one(1);
    EXPECT_THROW(one.parallel_for(10, 1, [](int64_t, int64_t, int) { throw std::logic_error("x"); }), std::logic_error);
}

TEST(ThreadPool, NestedCallRunsInline) {
    ThreadPool pool(2);
    std::atomic<int64_t> total{0};
    pool.parallel_for(8, 1, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i)
            pool.parallel_for(100, 1, [&](int64_t b2, int64_t e2, int) { total += e2 - b2; });
    });
    EXPECT_EQ(total.load(), 800);
}

TEST(ThreadPool, CallCost) {
    ThreadPool pool(2);
    std::atomic<int64_t> sink{0};
    auto fn = [&](int64_t b, int64_t e, int) { sink += e - b; };
    const int calls = 20000;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) pool.parallel_for(64, 1, fn);
    const double back_to_back = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / calls;
    // After a pause long enough for the worker to fall asleep.
    double after_sleep = 0;
    for (int i = 0; i < 20; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        auto t1 = std::chrono::steady_clock::now();
        pool.parallel_for(64, 1, fn);
        after_sleep += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t1).count() / 20;
    }
    std::printf("  parallel_for cost: %.2f us back to back, %.2f us after the worker slept\n", back_to_back, after_sleep);
    EXPECT_EQ(sink.load(), int64_t(calls + 20) * 64);
}
