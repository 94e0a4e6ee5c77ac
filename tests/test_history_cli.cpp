// `sluice history` end to end on a database filled through the store.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "history/store.h"
#include "history_test_util.h"

namespace sluice::history {
namespace {

struct Result {
    int rc;
    std::string out, err;
};

Result sluice(const std::string& args) {
    static int n = 0;
    const std::string base = test::tmp_dir() + "/cli" + std::to_string(getpid()) + "-" + std::to_string(n++);
    const std::string cmd = std::string(SLUICE_BIN) + " " + args + " >" + base + ".out 2>" + base + ".err </dev/null";
    const int st = std::system(cmd.c_str());
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, test::slurp(base + ".out"), test::slurp(base + ".err")};
}

class HistoryCli : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = test::tmp_db("cli");
        Store s(db_);
        a_ = s.create_conversation({.title = "Volcanoes", .model_name = "tiny.gguf", .model_fingerprint = "gguf1-9-ab"});
        s.add_message(a_, {.role = Role::User, .content = "Why do volcanoes erupt?"});
        s.add_message(a_, {.role = Role::Assistant, .content = "Magma pressure.", .thinking = "geology basics", .n_tokens = 3});
        const int64_t p = s.begin_message(a_, Role::Assistant);
        s.update_message(p, "And also gas", "");
        b_ = s.create_conversation({.title = "Bread"});
        s.add_message(b_, {.role = Role::User, .content = "Sourdough starter tips"});
    }
    std::string db_;
    int64_t a_ = 0, b_ = 0;
    std::string db() const { return " --db '" + db_ + "' "; }
};

TEST_F(HistoryCli, ListShowSearch) {
    Result r = sluice("history" + db() + "list");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("Volcanoes"), std::string::npos) << r.out;
    EXPECT_LT(r.out.find("Bread"), r.out.find("Volcanoes")) << "most recent first\n" << r.out;

    r = sluice("history" + db() + "list --json");
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j.size(), 2u);
    EXPECT_EQ(j[1]["messages"], 3);

    r = sluice("history" + db() + "show " + std::to_string(a_));
    ASSERT_EQ(r.rc, 0) << r.err;
    for (const char* want : {"Volcanoes", "Why do volcanoes erupt?", "Magma pressure.", "INTERRUPTED", "And also gas", "--thinking"})
        EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
    EXPECT_EQ(r.out.find("geology basics"), std::string::npos) << "thinking hidden by default";
    r = sluice("history show " + std::to_string(a_) + " --thinking" + db());  // flags in any order
    EXPECT_NE(r.out.find("geology basics"), std::string::npos) << r.out;

    r = sluice("history" + db() + "search sourdough");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("#" + std::to_string(b_)), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[Sourdough]"), std::string::npos) << r.out;
    r = sluice("history" + db() + "search magma pressure --json");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out).at(0)["conversation"], a_);
    r = sluice("history" + db() + "search nothing-like-this");
    EXPECT_NE(r.out.find("no messages match"), std::string::npos) << r.out;
}

TEST_F(HistoryCli, ExportAndDelete) {
    Result r = sluice("history" + db() + "export " + std::to_string(a_) + " --format md");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out.rfind("# Volcanoes\n", 0), 0u) << r.out;
    EXPECT_NE(r.out.find("*(interrupted"), std::string::npos);

    const std::string out = test::tmp_dir() + "/export-" + std::to_string(getpid()) + ".json";
    r = sluice("history" + db() + "export " + std::to_string(a_) + " --format json --out '" + out + "'");
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto j = nlohmann::json::parse(test::slurp(out));
    EXPECT_EQ(j["title"], "Volcanoes");
    EXPECT_EQ(j["messages"].size(), 3u);
    EXPECT_EQ(j["messages"][2]["partial"], true);

    r = sluice("history" + db() + "delete " + std::to_string(a_));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("3 messages"), std::string::npos) << r.out;
    r = sluice("history" + db() + "list");
    EXPECT_EQ(r.out.find("Volcanoes"), std::string::npos) << r.out;
    r = sluice("history" + db() + "delete " + std::to_string(a_));
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("no conversation"), std::string::npos) << r.err;
}

TEST_F(HistoryCli, BudgetAndErrors) {
    Result r = sluice("history" + db() + "budget 10M");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("budget 10.0 MiB"), std::string::npos) << r.out;
    EXPECT_NE(sluice("history" + db() + "budget").out.find("budget 10.0 MiB"), std::string::npos) << "persisted";

    const std::pair<std::string, std::string> bad[] = {
        {"history" + db() + "show", "one conversation ID"},
        {"history" + db() + "show abc", "positive integer"},
        {"history" + db() + "show 999", "no conversation 999"},
        {"history" + db() + "export 1 --format pdf", "md or json"},
        {"history" + db() + "export 1", "--format is required"},
        {"history" + db() + "frobnicate", "unknown history subcommand"},
        {"history" + db() + "search", "needs some text"},
        {"history --db /nonexistent/dir/h.db show 1", "no history database"},
        {"history" + db() + "budget lots", "size like 4G"},
    };
    for (const auto& [args, msg] : bad) {
        r = sluice(args);
        EXPECT_EQ(r.rc, 1) << args;
        EXPECT_NE(r.err.find(msg), std::string::npos) << args << ": " << r.err;
        EXPECT_EQ(r.err.rfind("sluice history: ", 0), 0u) << r.err;
    }
    // A file that is not a history database: refused, untouched.
    const std::string notes = test::tmp_dir() + "/notes-" + std::to_string(getpid()) + ".txt";
    { std::ofstream(notes) << "my notes\n"; }
    r = sluice("history --db '" + notes + "' list");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("left untouched"), std::string::npos) << r.err;
    EXPECT_EQ(test::slurp(notes), "my notes\n");
}

}  // namespace
}  // namespace sluice::history
