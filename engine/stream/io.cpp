#include "engine/stream/io.h"

#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "engine/error.h"

#if SLUICE_HAVE_URING
#include <liburing.h>
#endif

namespace sluice {

std::string read_error_text(int err) {
    if (err == kShortRead) return "unexpected end of file (truncated while open?)";
    return std::strerror(err);
}

const char* io_mode_name(IoMode m) {
    switch (m) {
        case IoMode::Auto: return "auto";
        case IoMode::Mmap: return "mmap";
        case IoMode::PageCache: return "page-cache";
        case IoMode::Direct: return "direct";
    }
    return "?";
}

const char* io_engine_name(IoEngine e) {
    switch (e) {
        case IoEngine::Auto: return "auto";
        case IoEngine::Uring: return "io_uring";
        case IoEngine::Pread: return "pread pool";
    }
    return "?";
}

namespace {

// One read as it progresses: continued after a short read until `need` bytes are in.
struct Op {
    ReadReq req;
    uint64_t done = 0;
};

// Outcome of one read() result for an op: finished (ok or error) or to be continued.
bool settle(Op& op, long res, ReadDone* out) {
    if (res < 0) {
        *out = {op.req.tag, int(-res), op.req.offset + op.done, op.done};
        return true;
    }
    if (res == 0) {  // end of file
        *out = {op.req.tag, op.done >= op.req.need ? 0 : kShortRead, op.req.offset + op.done, op.done};
        return true;
    }
    op.done += uint64_t(res);
    if (op.done >= op.req.need) {
        *out = {op.req.tag, 0, op.req.offset, op.done};
        return true;
    }
    return false;
}

#if SLUICE_HAVE_URING
class UringQueue final : public ReadQueue {
public:
    UringQueue(int fd, int depth) : fd_(fd), depth_(depth) {
        // Completions wait for our next system call instead of interrupting a computing thread.
        const unsigned flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
        init_rc_ = io_uring_queue_init(unsigned(depth), &ring_, flags);
        if (init_rc_ == -EINVAL && flags) init_rc_ = io_uring_queue_init(unsigned(depth), &ring_, 0);
    }
    int init_rc() const { return init_rc_; }  // 0, or -errno: the kernel refused (seccomp, sysctl)
    ~UringQueue() override {
        if (init_rc_ != 0) return;
        // Reads still in flight write into buffers the caller is about to free: wait for them.
        std::vector<ReadDone> sink;
        while (in_flight() > 0) reap(sink, true);
        io_uring_queue_exit(&ring_);
    }
    const char* name() const override { return "io_uring"; }

    void submit(const ReadReq* reqs, size_t n) override {
        for (size_t i = 0; i < n; ++i) {
            size_t idx;
            if (!free_.empty()) {
                idx = free_.back();
                free_.pop_back();
            } else {
                idx = ops_.size();
                ops_.emplace_back();
            }
            ops_[idx] = Op{reqs[i], 0};
            waiting_.push_back(idx);
            ++accepted_;
        }
        pump();
    }

    size_t reap(std::vector<ReadDone>& out, bool block) override {
        size_t got = 0;
        for (;;) {
            io_uring_cqe* cqe = nullptr;
            int rc;
            if (block && got == 0 && accepted_ > 0)
                rc = io_uring_wait_cqe(&ring_, &cqe);
            else
                rc = io_uring_peek_cqe(&ring_, &cqe);
            if (rc == -EINTR) continue;
            if (rc < 0 || !cqe) break;
            const size_t idx = size_t(io_uring_cqe_get_data64(cqe));
            const long res = cqe->res;
            io_uring_cqe_seen(&ring_, cqe);
            --submitted_;
            Op& op = ops_[idx];
            ReadDone d;
            if (res == -EAGAIN || res == -EINTR) {
                waiting_.push_front(idx);
            } else if (settle(op, res, &d)) {
                out.push_back(d);
                free_.push_back(idx);
                --accepted_;
                ++got;
            } else {
                waiting_.push_front(idx);  // short read: the rest
            }
            pump();
        }
        return got;
    }

    int64_t in_flight() const override { return accepted_; }

private:
    void pump() {
        bool any = false;
        while (!waiting_.empty() && submitted_ < depth_) {
            io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
            if (!sqe) break;
            const size_t idx = waiting_.front();
            waiting_.pop_front();
            const Op& op = ops_[idx];
            io_uring_prep_read(sqe, fd_, op.req.dst + op.done, unsigned(op.req.len - op.done), op.req.offset + op.done);
            io_uring_sqe_set_data64(sqe, idx);
            ++submitted_;
            any = true;
        }
        if (any) {
            int rc;
            do rc = io_uring_submit(&ring_);
            while (rc == -EINTR);
            if (rc < 0) throw Error(std::string("io_uring_submit: ") + std::strerror(-rc));
        }
    }

    int fd_;
    int64_t depth_;
    int init_rc_;
    io_uring ring_;
    std::vector<Op> ops_;
    std::vector<size_t> free_;
    std::deque<size_t> waiting_;
    int64_t submitted_ = 0;  // in the kernel
    int64_t accepted_ = 0;   // submitted by the caller, not yet returned by reap
};
#endif

// Blocking preads on worker threads: each read is one thread's syscall, so `depth` threads keep that
// many reads in flight. The threads sleep in the kernel, not on a core.
class PreadPool final : public ReadQueue {
public:
    PreadPool(int fd, int depth) : fd_(fd) {
        for (int i = 0; i < depth; ++i) threads_.emplace_back([this] { work(); });
    }
    ~PreadPool() override {
        {
            std::lock_guard<std::mutex> lk(m_);
            stop_ = true;
        }
        cv_work_.notify_all();
        for (std::thread& t : threads_) t.join();
    }
    const char* name() const override { return "pread pool"; }

    void submit(const ReadReq* reqs, size_t n) override {
        {
            std::lock_guard<std::mutex> lk(m_);
            for (size_t i = 0; i < n; ++i) work_.push_back(reqs[i]);
        }
        accepted_ += int64_t(n);
        cv_work_.notify_all();
    }

    size_t reap(std::vector<ReadDone>& out, bool block) override {
        std::unique_lock<std::mutex> lk(m_);
        if (block && accepted_ > 0) cv_done_.wait(lk, [&] { return !done_.empty(); });
        const size_t n = done_.size();
        out.insert(out.end(), done_.begin(), done_.end());
        done_.clear();
        accepted_ -= int64_t(n);
        return n;
    }

    int64_t in_flight() const override { return accepted_; }

private:
    void work() {
        for (;;) {
            ReadReq r;
            {
                std::unique_lock<std::mutex> lk(m_);
                cv_work_.wait(lk, [&] { return stop_ || !work_.empty(); });
                if (stop_ && work_.empty()) return;
                r = work_.front();
                work_.pop_front();
            }
            Op op{r, 0};
            ReadDone d;
            for (;;) {
                ssize_t res = ::pread(fd_, r.dst + op.done, size_t(r.len - op.done), off_t(r.offset + op.done));
                if (res < 0 && errno == EINTR) continue;
                if (settle(op, res < 0 ? -errno : long(res), &d)) break;
            }
            {
                std::lock_guard<std::mutex> lk(m_);
                done_.push_back(d);
            }
            cv_done_.notify_one();
        }
    }

    int fd_;
    std::vector<std::thread> threads_;
    std::mutex m_;
    std::condition_variable cv_work_, cv_done_;
    std::deque<ReadReq> work_;
    std::vector<ReadDone> done_;
    bool stop_ = false;
    int64_t accepted_ = 0;  // caller's thread only
};

// Fails the reads the hook names, passes the others through.
class FaultyQueue final : public ReadQueue {
public:
    FaultyQueue(std::unique_ptr<ReadQueue> inner, ReadFault fault) : inner_(std::move(inner)), fault_(std::move(fault)) {}
    const char* name() const override { return inner_->name(); }
    void submit(const ReadReq* reqs, size_t n) override {
        for (size_t i = 0; i < n; ++i) {
            if (int e = fault_(reqs[i].offset, reqs[i].len))
                injected_.push_back({reqs[i].tag, e, reqs[i].offset, 0});
            else
                inner_->submit(&reqs[i], 1);
        }
    }
    size_t reap(std::vector<ReadDone>& out, bool block) override {
        size_t n = injected_.size();
        out.insert(out.end(), injected_.begin(), injected_.end());
        injected_.clear();
        return n + inner_->reap(out, block && n == 0);
    }
    int64_t in_flight() const override { return inner_->in_flight() + int64_t(injected_.size()); }

private:
    std::unique_ptr<ReadQueue> inner_;
    ReadFault fault_;
    std::vector<ReadDone> injected_;
};

}  // namespace

// Auto is the pread pool: measured on this project's 2-core VM (bench/B30.md), io_uring decoded B30
// at 2.1-2.6 tok/s and the pool at 3.3-4.1 under a 4 GiB cap, the computing threads running at half
// speed beside io_uring (inline submission and completion work land on them; COOP_TASKRUN,
// DEFER_TASKRUN and IOSQE_ASYNC did not change that).
std::unique_ptr<ReadQueue> make_read_queue(int fd, IoEngine engine, int depth, ReadFault fault) {
    std::unique_ptr<ReadQueue> q;
#if SLUICE_HAVE_URING
    if (engine == IoEngine::Uring) {
        auto u = std::make_unique<UringQueue>(fd, depth);
        const int rc = u->init_rc();
        if (rc != 0) throw Error(std::string("io_uring is not available here (") + std::strerror(-rc) + "); use --io-engine pread");
        q = std::move(u);
    }
#else
    if (engine == IoEngine::Uring) throw Error("this sluice was built without liburing; use the pread pool");
#endif
    if (!q) q = std::make_unique<PreadPool>(fd, depth);
    if (fault) q = std::make_unique<FaultyQueue>(std::move(q), std::move(fault));
    return q;
}

}  // namespace sluice
