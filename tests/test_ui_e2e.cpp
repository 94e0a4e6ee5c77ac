// `sluice chat` end to end in a real terminal: tmux runs the binary on the fixture model, keys go in
// with send-keys, and the screen is read back with capture-pane. Start, send a message, watch the
// reply stream and the gauges move, stop it with Esc, resize, open the conversation again and
// continue it, /new, and /quit with exit code 0. Also measures how long a key typed during
// generation takes to appear on screen. Then the history: quit, start again on the same database,
// /open the conversation and see it resume from its prefill snapshot. HOME is a temporary folder.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string run(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
}

bool have_tmux() { return std::system("command -v tmux >/dev/null 2>&1") == 0; }

// A HOME of its own per test process, so the history database never lands in the real one.
struct TempHome {
    std::string path;
    TempHome() {
        const char* t = std::getenv("SLUICE_TMP");
        path = std::string(t ? t : "/tmp/sluice-test") + "/e2e-home-" + std::to_string(getpid());
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempHome() { std::filesystem::remove_all(path); }
};

class Tmux {
public:
    Tmux() = default;
    ~Tmux() { tmux("kill-server"); }
    std::string tmux(const std::string& args) { return run("tmux -L " + sock_ + " " + args + " 2>&1"); }
    void start(const std::string& cmd, int cols, int rows) {
        // Each start gets a server of its own: a killed one may still hold its socket for a moment.
        tmux("kill-server");
        sock_ = "sluice-e2e-" + std::to_string(getpid()) + "-" + std::to_string(++starts_);
        // The pane's shell prints the exit code when sluice ends and keeps the pane open.
        const std::string inner = "HOME=" + home_.path + " XDG_DATA_HOME= TERM=screen-256color " + cmd +
                                  "; echo EXIT=$?; sleep 60";
        tmux("-f /dev/null new-session -d -x " + std::to_string(cols) + " -y " + std::to_string(rows) + " '" + inner + "'");
    }
    std::string screen() { return tmux("capture-pane -p"); }
    void keys(const std::string& k) { tmux("send-keys " + k); }
    void text(const std::string& t) { tmux("send-keys -l '" + t + "'"); }
    // Waits until the screen matches; returns it (empty on timeout).
    // The screen once it matches re and (without non-empty) no longer shows `without`: a capture can
    // fall in the middle of a redraw, its top lines new and the rest still the old screen.
    std::string wait_for(const std::string& re, std::chrono::milliseconds timeout = 10s, const std::string& without = "") {
        const std::regex r(re);
        const auto end = Clock::now() + timeout;
        std::string s;
        while (Clock::now() < end) {
            s = screen();
            if (std::regex_search(s, r) && (without.empty() || s.find(without) == std::string::npos)) return s;
            std::this_thread::sleep_for(20ms);
        }
        ADD_FAILURE() << "screen never matched /" << re << "/" << (without.empty() ? "" : " without '" + without + "'")
                      << "; last screen:\n" << s;
        return {};
    }
    const std::string& home() const { return home_.path; }

private:
    std::string sock_ = "sluice-e2e-" + std::to_string(getpid());
    int starts_ = 0;
    TempHome home_;
};

int ctx_used(const std::string& screen) {
    std::smatch m;
    const std::regex r("ctx (\\d+)/512");
    return std::regex_search(screen, m, r) ? std::stoi(m[1]) : -1;
}

std::string line_with(const std::string& screen, const std::string& needle) {
    size_t p = screen.find(needle);
    if (p == std::string::npos) return {};
    size_t a = screen.rfind('\n', p), b = screen.find('\n', p);
    return screen.substr(a == std::string::npos ? 0 : a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
}

TEST(UiEndToEnd, ChatInTmux) {
    if (!have_tmux()) GTEST_SKIP() << "tmux is not installed (scripts/deps.sh installs it)";
    Tmux t;
    const std::string model = std::string(SLUICE_FIXTURES) + "/qwen3/moe_a.gguf";
    // Sampling at temperature 1 over the whole vocabulary keeps the random model talking; the delay
    // paces it so a reply lasts long enough to be watched and stopped.
    t.start(std::string(SLUICE_BIN) + " chat " + model + " -t 1 --temp 1 --top-k 0 --top-p 1 --min-p 0 --token-delay-ms 40",
            80, 24);
    std::string s = t.wait_for("ready: moe_a.gguf");
    EXPECT_NE(s.find("ctx 0/512"), std::string::npos) << s;
    EXPECT_NE(s.find("idle"), std::string::npos);

    // A message: the reply streams and the gauges move.
    t.text("hello there");
    t.keys("Enter");
    s = t.wait_for("generating");
    EXPECT_NE(s.find("❯ hello there"), std::string::npos) << s;
    const int ctx1 = ctx_used(t.wait_for("ctx [1-9]\\d*/512"));
    std::this_thread::sleep_for(400ms);
    s = t.screen();
    const int ctx2 = ctx_used(s);
    EXPECT_GT(ctx2, ctx1) << s;
    EXPECT_TRUE(std::regex_search(s, std::regex("tok/s [1-9]"))) << s;

    // A resize in the middle of a reply: the layout follows and generation goes on.
    // The screen is read until the app has redrawn: tmux shows the old frame cut to the new size first.
    t.tmux("resize-window -x 70 -y 18");
    std::string rule70;
    for (int i = 0; i < 70; ++i) rule70 += "─";
    s = t.wait_for("\n" + rule70 + "\n");  // the rule spans the new width
    EXPECT_NE(s.find("generating"), std::string::npos) << s;
    std::this_thread::sleep_for(200ms);
    EXPECT_GT(ctx_used(t.screen()), ctx2);
    t.tmux("resize-window -x 80 -y 24");

    // A key typed during generation shows in the input line: measure how long that takes.
    const auto t0 = Clock::now();
    t.text("x");
    std::string typed;
    while (Clock::now() - t0 < 5s) {
        typed = t.screen();
        if (typed.find("❯ x") != std::string::npos) break;
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    std::printf("key echo during generation: %.1f ms (including tmux send-keys and capture-pane)\n", ms);
    EXPECT_NE(typed.find("❯ x"), std::string::npos) << typed;
    EXPECT_LT(ms, 1000);
    t.keys("BSpace");

    // Esc stops the reply; the partial reply is kept with its figures.
    t.keys("Escape");
    s = t.wait_for("tok/s · prompt [\\s\\S]* · stopped");  // the figures may wrap
    EXPECT_NE(s.find("idle"), std::string::npos) << s;
    EXPECT_NE(s.find("#1 hello there"), std::string::npos) << s;  // stored as conversation 1

    // Resize: wider shows the conversation list; narrower hides it and keeps the gauges.
    t.tmux("resize-window -x 120 -y 30");
    s = t.wait_for("Conversations");
    EXPECT_NE(line_with(s, "\ntok/s").find("ctx"), std::string::npos) << s;
    t.tmux("resize-window -x 60 -y 14");
    // The gauges' line (not the reply's figures); fails if the list is still there after 10 s.
    s = t.wait_for("\ntok/s [0-9.]+ │ cache", 10s, "Conversations");
    t.tmux("resize-window -x 80 -y 24");

    // Bad commands get one line; /new clears; /open brings conversation 1 back and it goes on.
    t.text("/set temp hot");
    t.keys("Enter");
    t.wait_for("error: 'hot' is not a number");
    t.text("/new");
    t.keys("Enter");
    s = t.wait_for("new conversation\\n", 10s, "❯ hello there");  // the old conversation cleared
    EXPECT_EQ(s.find("❯ hello there"), std::string::npos) << s;
    t.text("/open 1");
    t.keys("Enter");
    s = t.wait_for("resumed from its snapshot: \\d+ tokens restored");  // saved after the stopped reply
    EXPECT_NE(s.find("❯ hello there"), std::string::npos) << s;
    EXPECT_NE(s.find("stopped"), std::string::npos) << s;  // the past reply's figures
    t.text("and then?");
    t.keys("Enter");
    t.wait_for("❯ and then\\?");
    t.keys("Escape");
    s = t.wait_for("\\(\\+\\d+ cached\\)");  // the second reply's figures: its prompt reused the cache
    t.text("/list");
    t.keys("Enter");
    s = t.wait_for("#1  hello there  \\(4 messages\\)");

    // /quit leaves with exit code 0, and the input history was saved for the next session.
    t.text("/quit");
    t.keys("Enter");
    t.wait_for("EXIT=0");
    const std::string hist = run("cat " + t.home() + "/.local/share/sluice/input_history");
    EXPECT_NE(hist.find("hello there"), std::string::npos) << hist;
    EXPECT_TRUE(std::filesystem::exists(t.home() + "/.local/share/sluice/history.db"));  // the default place
}

int number_after(const std::string& s, const std::string& re) {
    std::smatch m;
    return std::regex_search(s, m, std::regex(re)) ? std::stoi(m[1]) : -1;
}

TEST(UiEndToEnd, HistoryResumesFromTheSnapshotInANewProcess) {
    if (!have_tmux()) GTEST_SKIP() << "tmux is not installed (scripts/deps.sh installs it)";
    Tmux t;
    const std::string model = std::string(SLUICE_FIXTURES) + "/qwen3/moe_a.gguf";
    const std::string db = t.home() + "/chats/h.db";
    const std::string opts = " -t 1 --temp 1 --top-k 0 --top-p 1 --min-p 0 -n 12 --db " + db;
    t.start(std::string(SLUICE_BIN) + " chat " + model + opts, 100, 30);
    t.wait_for("ready: moe_a.gguf");
    t.text("remember the lighthouse");
    t.keys("Enter");
    // The reply's figures: N tok · ... · prompt P tok.
    std::string s = t.wait_for("[\n│]\\d+ tok · .* · prompt \\d+ tok");
    const int reply = number_after(s, "[\n│](\\d+) tok · ");
    const int prompt = number_after(s, " · prompt (\\d+) tok");
    ASSERT_GT(reply, 0) << s;
    ASSERT_GT(prompt, 0) << s;
    t.text("/quit");
    t.keys("Enter");
    t.wait_for("EXIT=0");
    EXPECT_TRUE(std::filesystem::exists(db));
    EXPECT_FALSE(std::filesystem::exists(t.home() + "/.local/share/sluice/history.db"));  // --db only

    // A new process on the same database: no model argument opens the last one used.
    t.start(std::string(SLUICE_BIN) + " chat" + opts, 100, 30);
    t.wait_for("ready: moe_a.gguf");
    t.text("/list");
    t.keys("Enter");
    t.wait_for("#1  remember the lighthouse  \\(2 messages\\)");
    t.text("/open 1");
    t.keys("Enter");
    s = t.wait_for("resumed from its snapshot: \\d+ tokens restored, \\d+ processed");
    EXPECT_NE(s.find("❯ remember the lighthouse"), std::string::npos) << s;
    EXPECT_NE(s.find(std::to_string(reply) + " tok · "), std::string::npos) << "the past reply's figures\n" << s;
    const int restored = number_after(s, "snapshot: (\\d+) tokens restored");
    const int processed = number_after(s, "tokens restored, (\\d+) processed");
    // The old prompt and reply come from the snapshot; only the turn's closing tokens are processed.
    EXPECT_GE(restored, prompt + reply - 1) << s;
    EXPECT_LE(processed, 8) << s;

    // The follow-up's prompt is only the new message: everything before it was cached.
    t.text("and the boat?");
    t.keys("Enter");
    s = t.wait_for("prompt \\d+ tok \\(\\+\\d+ cached\\)");
    EXPECT_GE(number_after(s, "prompt \\d+ tok \\(\\+(\\d+) cached\\)"), restored + processed - 1) << s;
    EXPECT_LE(number_after(s, "prompt (\\d+) tok \\(\\+"), 24) << s;  // "and the boat?" and the turn marks
    t.text("/list");
    t.keys("Enter");
    t.wait_for("#1  remember the lighthouse  \\(4 messages\\)");
    t.text("/quit");
    t.keys("Enter");
    t.wait_for("EXIT=0");

    // Other settings (experts per token): the snapshot does not fit, and the screen says so.
    t.start(std::string(SLUICE_BIN) + " chat" + opts + " --experts-per-token 1", 100, 30);
    t.wait_for("ready: moe_a.gguf");
    t.text("/open 1");
    t.keys("Enter");
    s = t.wait_for("conversation processed: \\d+ tokens");
    EXPECT_NE(s.find("was not used: it was made with other settings"), std::string::npos) << s;
    t.text("/quit");
    t.keys("Enter");
    t.wait_for("EXIT=0");

    // --no-history: nothing from the database, nothing written.
    t.start(std::string(SLUICE_BIN) + " chat " + model + " -t 1 --no-history", 100, 30);
    t.wait_for("ready: moe_a.gguf");
    t.text("/list");
    t.keys("Enter");
    t.wait_for("no saved conversations yet");
    t.text("/quit");
    t.keys("Enter");
    t.wait_for("EXIT=0");
    EXPECT_FALSE(std::filesystem::exists(t.home() + "/.local/share/sluice/history.db"));
}

TEST(UiEndToEnd, NoColorKeepsAttributesButNoColours) {
    if (!have_tmux()) GTEST_SKIP() << "tmux is not installed (scripts/deps.sh installs it)";
    Tmux t;
    const std::string model = std::string(SLUICE_FIXTURES) + "/qwen3/moe_a.gguf";
    t.start("NO_COLOR=1 " + std::string(SLUICE_BIN) + " chat " + model + " -t 1", 80, 24);
    t.wait_for("ready: moe_a.gguf");
    t.text("/nonsense");
    t.keys("Enter");
    t.wait_for("error: unknown command /nonsense");
    const std::string esc = t.tmux("capture-pane -p -e");
    EXPECT_FALSE(std::regex_search(esc, std::regex("\x1b\\[[0-9;]*(3[0-7]|38;5;\\d+|4[0-7]|48;5;\\d+)m"))) << esc;
    EXPECT_TRUE(std::regex_search(esc, std::regex("\\x1b\\[(0;)?1m"))) << "bold still marks things";
    t.text("/quit");
    t.keys("Enter");
    t.wait_for("EXIT=0");
}

TEST(UiEndToEnd, NoModelOpensTheDemoModel) {
    // Past the model choice, it stops only because stdin is not a terminal.
    TempHome home;
    const std::string out = run("HOME=" + home.path + " XDG_DATA_HOME= " + std::string(SLUICE_BIN) + " chat </dev/null 2>&1; echo rc=$?");
    EXPECT_NE(out.find("needs a terminal"), std::string::npos) << out;
}

// The expert-streaming gauges: after a reply, the cache hit rate and the disk rate show figures
// (not "–"). The fixture streams with --io direct; the demo model with the chat's default (--io
// auto streams small experts, app/verb_chat.cpp), so its gauges move too.
void expect_streaming_gauges(const std::string& model_args, const std::string& ready) {
    Tmux t;
    const std::string db = t.home() + "/g.db";
    t.start(std::string(SLUICE_BIN) + " chat " + model_args + " -t 1 --temp 1 --top-k 0 --top-p 1 --min-p 0 -n 16 --db " + db,
            100, 30);
    t.wait_for(ready, 30s);
    t.text("tell me about rivers");
    t.keys("Enter");
    std::string s = t.wait_for("[\n│]\\d+ tok · .* · prompt \\d+ tok", 30s);
    s = t.wait_for("idle");
    const std::string gauges = line_with(s, "│ disk ");
    std::printf("gauges after a reply (%s): %s\n", model_args.c_str(), gauges.c_str());
    EXPECT_TRUE(std::regex_search(gauges, std::regex("cache ~?\\d+%"))) << s;
    EXPECT_TRUE(std::regex_search(gauges, std::regex("disk \\d[\\d.]* MB/s"))) << s;
    EXPECT_EQ(gauges.find("–"), std::string::npos) << s;
    t.text("/quit");
    t.keys("Enter");
    t.wait_for("EXIT=0");
}

TEST(UiEndToEnd, StreamingGaugesWithIoDirect) {
    if (!have_tmux()) GTEST_SKIP() << "tmux is not installed (scripts/deps.sh installs it)";
    expect_streaming_gauges(std::string(SLUICE_FIXTURES) + "/qwen3/moe_a.gguf --io direct", "ready: moe_a.gguf");
}

TEST(UiEndToEnd, StreamingGaugesMoveOnTheDemoModel) {
    if (!have_tmux()) GTEST_SKIP() << "tmux is not installed (scripts/deps.sh installs it)";
    const std::string demo = std::string(SLUICE_SOURCE_DIR) + "/models/demo.gguf";
    if (!std::filesystem::exists(demo)) GTEST_SKIP() << "no models/demo.gguf";
    expect_streaming_gauges(demo, "ready: demo.gguf");
}

TEST(UiEndToEnd, NoModelAndNoDemoSaysHowToGetOne) {
    TempHome home;
    const std::string out = run("HOME=" + home.path + " XDG_DATA_HOME= SLUICE_DEMO_MODEL=/nonexistent-sluice/demo.gguf " +
                                std::string(SLUICE_BIN) + " chat 2>&1; echo rc=$?");
    EXPECT_NE(out.find("sluice chat MODEL.gguf"), std::string::npos) << out;
    EXPECT_NE(out.find("sluice gen-model"), std::string::npos) << out;
    EXPECT_NE(out.find("rc=2"), std::string::npos) << out;
}

}  // namespace
