// Durability: writer processes killed with SIGKILL at random moments (opening, migrating, adding
// messages, streaming a reply, saving or evicting snapshots) never leave a damaged database or lose a
// message whose call returned; a full disk while saving a snapshot is a clear error that leaves the
// messages intact.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <thread>

#include "history/sqlite.h"
#include "history/store.h"
#include "history_test_util.h"

namespace sluice::history {
namespace {

// What a writer reports through the pipe once a call has returned.
struct Record {
    int32_t kind;  // 1 add_message returned, 2 begin_message returned, 3 finish_message returned
    int32_t round, j;
    int64_t id;
};

std::string content_for(int round, int j) {
    return "r" + std::to_string(round) + "-m" + std::to_string(j) + " " + std::string(size_t((j * 397 + round * 31) % 3000), 'x');
}

// The writer: runs until killed.
[[noreturn]] void writer(const std::string& path, int round, int fd) {
    try {
        Store::Options o;
        o.snapshot_budget = 600 << 10;  // small: evictions happen often
        o.chunk_bytes = 64 << 10;
        Store s(path, o);
        const auto convs = s.conversations(1);
        const int64_t conv = convs.empty() ? s.create_conversation({.title = "durability"}) : convs[0].id;
        std::mt19937 rng{uint32_t(round)};
        std::vector<uint8_t> state(200 << 10);
        for (int j = 0;; ++j) {
            Record r{1, round, j, 0};
            if (j % 3 == 2) {
                r.kind = 2;
                r.id = s.begin_message(conv, Role::Assistant);
                if (::write(fd, &r, sizeof r) != sizeof r) _exit(3);
                s.update_message(r.id, "streaming...", "thinking...");
                Message m;
                m.role = Role::Assistant;
                m.content = content_for(round, j);
                s.finish_message(r.id, m);
                r.kind = 3;
            } else {
                r.id = s.add_message(conv, {.role = Role::User, .content = content_for(round, j)});
            }
            if (::write(fd, &r, sizeof r) != sizeof r) _exit(3);
            if (j % 4 == 3) {
                for (auto& b : state) b = uint8_t(rng());
                std::vector<int32_t> toks(size_t(10 + j));
                for (auto& t : toks) t = int32_t(rng() % 1000);
                s.put_snapshot(conv, "fp", "set", toks, state);
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "writer round %d: %s\n", round, e.what());
        _exit(2);
    }
}

TEST(Durability, SigkillAtRandomPointsLosesNothingCommitted) {
    const std::string path = test::tmp_db("sigkill");
    std::mt19937 rng(20240601);
    std::map<int64_t, Record> done;  // message id → the last thing reported about it
    const int kRounds = 120;
    int killed_early = 0;
    for (int round = 0; round < kRounds; ++round) {
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::close(fds[0]);
            writer(path, round, fds[1]);
        }
        ::close(fds[1]);
        // Early rounds die while opening and migrating; later ones mid-write.
        const int max_us = round < 30 ? 2000 + 500 * round : 100000;
        std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, max_us)(rng)));
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        ASSERT_TRUE(WIFSIGNALED(status)) << "round " << round << ": the writer stopped by itself (status " << status << ")";
        Record r;
        int n = 0;
        while (::read(fds[0], &r, sizeof r) == sizeof r) {
            done[r.id] = r;
            ++n;
        }
        ::close(fds[0]);
        killed_early += n == 0;

        // Every few rounds, and at the end: the file is sound and holds every reported message.
        if (round % 10 != 9 && round != kRounds - 1) continue;
        SCOPED_TRACE("after round " + std::to_string(round));
        Store s(path);
        EXPECT_EQ(s.db().scalar_str("PRAGMA integrity_check"), "ok");
        s.db().exec("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')");
        Stmt fk(s.db(), "PRAGMA foreign_key_check");
        EXPECT_FALSE(fk.step());
        EXPECT_LE(s.snapshot_bytes(), uint64_t(600 << 10));
        Stmt q(s.db(), "SELECT content, partial FROM messages WHERE id = ?1");
        for (const auto& [id, rec] : done) {
            q.reset();
            q.bind(1, id);
            ASSERT_TRUE(q.step()) << "message " << id << " (round " << rec.round << ", #" << rec.j << ") was lost";
            if (rec.kind == 2) {
                EXPECT_TRUE(q.i64(1) == 1 || q.str(0) == content_for(rec.round, rec.j)) << "an unfinished reply stays marked partial";
            } else {
                EXPECT_EQ(q.str(0), content_for(rec.round, rec.j));
                EXPECT_EQ(q.i64(1), 0);
            }
        }
    }
    std::printf("%zu messages reported committed over %d kills (%d before the first commit)\n", done.size(), kRounds, killed_early);
    EXPECT_GT(done.size(), 50u) << "the writers should get somewhere";
    EXPECT_GT(killed_early, 5) << "some kills should land while opening";
}

// RLIMIT_FSIZE stands in for a full disk: writes past the limit fail with EFBIG.
TEST(Durability, DiskFullWhileSavingASnapshot) {
    const std::string path = test::tmp_db("diskfull");
    int64_t conv = 0;
    {
        Store s(path);
        conv = s.create_conversation({.title = "full disk"});
        for (int i = 0; i < 5; ++i) s.add_message(conv, {.role = Role::User, .content = "kept " + std::to_string(i)});
    }
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::close(fds[0]);
        ::signal(SIGXFSZ, SIG_IGN);
        std::string report;
        int rc = 0;
        try {
            Store s(path);
            const rlimit lim{512 << 10, 512 << 10};
            ::setrlimit(RLIMIT_FSIZE, &lim);
            std::vector<uint8_t> state(4 << 20);
            std::mt19937 rng(1);
            for (auto& b : state) b = uint8_t(rng());
            try {
                s.put_snapshot(conv, "fp", "set", std::vector<int32_t>{1, 2, 3}, state);
                report = "snapshot saved despite the limit";
                rc = 1;
            } catch (const SqlError& e) {
                report = e.what();
                rc = e.disk_full() ? 0 : 1;
            }
            // The store still works for small writes.
            s.add_message(conv, {.role = Role::User, .content = "after the failure"});
        } catch (const std::exception& e) {
            report += std::string(" / then: ") + e.what();
            rc = 2;
        }
        if (::write(fds[1], report.data(), report.size()) < 0) rc = 4;
        _exit(rc);
    }
    ::close(fds[1]);
    std::string report;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) report.append(buf, size_t(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status)) << report;
    EXPECT_EQ(WEXITSTATUS(status), 0) << report;
    EXPECT_NE(report.find("no space to save a snapshot"), std::string::npos) << report;
    EXPECT_NE(report.find("conversation is intact"), std::string::npos) << report;
    std::printf("disk full: %s\n", report.c_str());

    Store s(path);
    EXPECT_EQ(s.db().scalar_str("PRAGMA integrity_check"), "ok");
    const auto ms = s.messages(conv);
    ASSERT_EQ(ms.size(), 6u);
    EXPECT_EQ(ms[4].content, "kept 4");
    EXPECT_EQ(ms[5].content, "after the failure");
    EXPECT_TRUE(s.snapshots(conv).empty());
}

}  // namespace
}  // namespace sluice::history
