// The chat's non-drawing parts: slash commands, the transcript (streaming Markdown, folded thinking,
// scroll anchoring), the input line through readline (editing, history across sessions, Ctrl-R,
// pasted newlines, wide characters) and the in-memory conversation store.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "ui/commands.h"
#include "ui/conversation_store.h"
#include "ui/input.h"
#include "ui/transcript.h"

namespace sluice::ui {
namespace {

const bool kLocale = ensure_utf8_locale();

std::string all_text(const std::vector<Line>& lines) {
    std::string s;
    for (const Line& l : lines) s += l.text() + "\n";
    return s;
}

TEST(UiCommands, ParseAndValidate) {
    EXPECT_FALSE(parse_command("hello /there"));
    auto c = parse_command("  /Open  3 ");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->name, "open");
    EXPECT_EQ(c->rest, "3");
    SamplerParams p;
    EXPECT_EQ(apply_set(p, "temp", "0.2"), "");
    EXPECT_FLOAT_EQ(p.temperature, 0.2f);
    EXPECT_EQ(apply_set(p, "top_k", "12"), "");
    EXPECT_EQ(p.top_k, 12);
    EXPECT_EQ(apply_set(p, "seed", "7"), "");
    EXPECT_EQ(p.seed, 7u);
    EXPECT_NE(apply_set(p, "temp", "hot").find("not a number"), std::string::npos);
    EXPECT_NE(apply_set(p, "top_p", "1.5").find("top_p"), std::string::npos);
    EXPECT_NE(apply_set(p, "top_k", "2.5").find("whole"), std::string::npos);
    EXPECT_NE(apply_set(p, "warmth", "1").find("unknown setting"), std::string::npos);
    EXPECT_FLOAT_EQ(p.temperature, 0.2f);  // failures change nothing
    std::string why;
    EXPECT_EQ(parse_id("#4", why), 4);
    EXPECT_FALSE(parse_id("four", why));
    EXPECT_NE(why.find("four"), std::string::npos);
    for (std::string_view line : {std::string_view(kHelpText)})
        for (size_t a = 0, b; a < line.size(); a = b + 1) {
            b = line.find('\n', a);
            if (b == std::string_view::npos) b = line.size();
            EXPECT_LE(text_width(line.substr(a, b - a)), 80) << "help lines fit 80 columns";
        }
}

TEST(UiTranscript, StreamingShowsRawTextUntilABlockCompletes) {
    Transcript t;
    t.add(Entry::User, "hi");
    t.append_reply("Some **bold", false);
    std::string s = all_text(t.lines(40));
    EXPECT_NE(s.find("Some **bold"), std::string::npos) << s;  // raw: the block is not complete
    t.append_reply("** text\n\nnext *par", false);
    s = all_text(t.lines(40));
    EXPECT_NE(s.find("Some bold text"), std::string::npos) << s;  // rendered
    EXPECT_NE(s.find("next *par"), std::string::npos) << s;       // still raw
    t.finish_reply("3 tok · 10 tok/s");
    s = all_text(t.lines(40));
    EXPECT_NE(s.find("next *par"), std::string::npos) << s;  // an unclosed * stays literal
    EXPECT_NE(s.find("3 tok · 10 tok/s"), std::string::npos);
    EXPECT_EQ(s.find("▌"), std::string::npos);  // no cursor once done
}

TEST(UiTranscript, ThinkingIsDimmedAndFolds) {
    Transcript t;
    t.append_reply("let me think about it", true);
    t.append_reply("The answer.", false);
    t.finish_reply("");
    auto lines = t.lines(60);
    EXPECT_NE(all_text(lines).find("┊ let me think about it"), std::string::npos);
    EXPECT_TRUE(lines[0].spans.back().style & Dim);
    t.set_show_thinking(false);
    const std::string s = all_text(t.lines(60));
    EXPECT_EQ(s.find("let me think"), std::string::npos);
    EXPECT_NE(s.find("thinking (5 words hidden"), std::string::npos) << s;
    EXPECT_NE(s.find("The answer."), std::string::npos);
}

TEST(UiTranscript, ScrolledBackTheViewStaysWhileTextArrives) {
    Transcript t;
    for (int i = 0; i < 30; ++i) t.add(Entry::Info, "line " + std::to_string(i));
    t.lines(40);
    t.scroll_by(10, 5);
    EXPECT_EQ(t.scroll(), 10);
    t.append_reply("more\n\nand more", false);
    t.lines(40);
    EXPECT_EQ(t.scroll(), 10 + 5);  // blank, "more", blank, "and more", the reply cursor: anchored
    t.scroll_by(-1000, 5);
    EXPECT_EQ(t.scroll(), 0);
    t.scroll_by(100000, 5);
    EXPECT_EQ(t.scroll(), int(t.lines(40).size()) - 5);
}

TEST(UiInput, EditingHistoryAcrossSessionsAndSearch) {
    const char* tmp = std::getenv("SLUICE_TMP");
    const std::string dir = std::string(tmp ? tmp : "/tmp/sluice-test");
    std::filesystem::create_directories(dir);
    const std::string hist = dir + "/input_history_" + std::to_string(getpid());
    std::filesystem::remove(hist);
    {
        LineInput in(hist);
        in.feed("helo");
        in.feed("\033[D");  // left
        in.feed("l");
        EXPECT_EQ(in.text(), "hello");
        EXPECT_EQ(in.point(), 4u);
        in.feed("\r");
        EXPECT_EQ(in.take_line(), "hello");
        EXPECT_EQ(in.text(), "");
        in.feed("日本語\r");
        EXPECT_EQ(in.take_line(), "日本語");
        in.insert("pasted\nlines");  // a paste keeps its newline
        in.feed("\r");
        EXPECT_EQ(in.take_line(), "pasted\nlines");
        EXPECT_FALSE(in.take_line());
    }
    {
        LineInput in(hist);  // a new session reads the history
        in.feed("\033[A");   // up: the last line
        EXPECT_EQ(in.text(), "pasted\nlines");
        in.feed("\033[A");
        EXPECT_EQ(in.text(), "日本語");
        in.clear();
        in.feed("\x12" "hel");  // Ctrl-R
        EXPECT_TRUE(in.searching());
        EXPECT_NE(in.prompt().find("hel"), std::string::npos) << in.prompt();
        EXPECT_EQ(in.text(), "hello");
        in.feed("\r");
        EXPECT_FALSE(in.searching());
        in.feed("\r");
        EXPECT_EQ(in.take_line(), "hello");
    }
    std::ifstream f(hist);
    std::string content((std::istreambuf_iterator<char>(f)), {});
    EXPECT_NE(content.find("hello"), std::string::npos);
    std::filesystem::remove(hist);
}

TEST(UiInput, ViewWrapsAndPlacesTheCursorOnWideCharacters) {
    InputView v = input_view("❯ ", "日本語", 3, 10);  // cursor after 日
    ASSERT_EQ(v.lines.size(), 1u);
    EXPECT_EQ(v.cursor_row, 0);
    EXPECT_EQ(v.cursor_col, 4);
    v = input_view("❯ ", "abcdefghij", 10, 6);  // prompt 2 + 10 chars at width 6
    EXPECT_EQ(v.lines.size(), 3u);
    EXPECT_EQ(v.cursor_row, 2);
    EXPECT_EQ(v.cursor_col, 0);
    v = input_view("❯ ", "one\ntwo", 7, 40);
    ASSERT_EQ(v.lines.size(), 2u);
    EXPECT_EQ(v.lines[1].text(), "two");
    EXPECT_EQ(v.cursor_row, 1);
    EXPECT_EQ(v.cursor_col, 3);
    v = input_view("❯ ", "ab日", 4, 5);  // 日 does not fit after "❯ ab": it wraps whole
    EXPECT_EQ(v.lines.size(), 2u);
    EXPECT_EQ(v.lines[1].text(), "日");
}

TEST(UiStore, MemoryStoreKeepsConversationsInOrder) {
    auto s = make_memory_store();
    EXPECT_TRUE(s->list().empty());
    const int64_t a = s->create({0, "first", "m.gguf", "", 0, 0});
    const int64_t b = s->create({0, "second", "m.gguf", "be brief", 0, 0});
    EXPECT_NE(a, b);
    EXPECT_EQ(s->append(a, {"user", "q1", "", 0, {}, false, 0}), 1);
    EXPECT_EQ(s->append(a, {"assistant", "r1", "", 3, {}, false, 0}), 2);
    EXPECT_EQ(s->append(a, {"user", "q2", "", 0, {}, false, 0}), 3);
    EXPECT_EQ(s->list().front().id, a);  // most recently updated first
    EXPECT_EQ(s->get(a)->n_messages, 3);
    s->erase_from(a, 2);
    EXPECT_EQ(s->messages(a).size(), 1u);
    EXPECT_EQ(s->append(a, {"assistant", "r1'", "", 3, {}, false, 0}), 2);
    auto ci = *s->get(b);
    ci.title = "renamed";
    s->update(ci);
    EXPECT_EQ(s->get(b)->title, "renamed");
    EXPECT_TRUE(s->remove(b));
    EXPECT_FALSE(s->remove(b));
    EXPECT_FALSE(s->get(b));
    EXPECT_FALSE(s->setting("last_model"));
    s->set_setting("last_model", "/m.gguf");
    EXPECT_EQ(s->setting("last_model"), "/m.gguf");
}

}  // namespace
}  // namespace sluice::ui
