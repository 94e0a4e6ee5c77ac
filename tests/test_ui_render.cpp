// The UI's pure parts: wrapping with wide characters, Markdown -> styled lines, gauge strings, and
// the layout at 80x24, on resize and on tiny terminals.
#include <gtest/gtest.h>

#include "ui/gauges.h"
#include "ui/layout.h"
#include "ui/markdown.h"
#include "ui/text.h"

namespace sluice::ui {
namespace {

const bool kLocale = ensure_utf8_locale();

std::vector<std::string> texts(const std::vector<Line>& lines) {
    std::vector<std::string> out;
    for (const Line& l : lines) out.push_back(l.text());
    return out;
}

const Span* find_span(const std::vector<Line>& lines, std::string_view text) {
    for (const Line& l : lines)
        for (const Span& s : l.spans)
            if (s.text.find(text) != std::string::npos) return &s;
    return nullptr;
}

TEST(UiText, WidthsOfWideAndCombiningCharacters) {
    ASSERT_TRUE(kLocale);
    EXPECT_EQ(text_width("abc"), 3);
    EXPECT_EQ(text_width("日本語"), 6);
    EXPECT_EQ(text_width("e\u0301"), 1);  // e + combining acute
    EXPECT_EQ(text_width("🙂"), 2);
    EXPECT_EQ(sanitize("a\x01" "b\tc"), "a\uFFFDb c");
    EXPECT_EQ(sanitize("\xff"), "\uFFFD");
    EXPECT_EQ(fit("日本語テキスト", 7), "日本語…");
    EXPECT_EQ(text_width(pad_right("日本", 7)), 7);
}

TEST(UiText, WrapBreaksAtSpacesAndNeverSplitsAWideCharacter) {
    auto lines = texts(wrap({{"the quick brown fox jumps", Plain}}, 10));
    EXPECT_EQ(lines, (std::vector<std::string>{"the quick", "brown fox", "jumps"}));
    // Wide characters: 5 columns hold two of them, never half of a third.
    lines = texts(wrap({{"日本語テキスト", Plain}}, 5));
    EXPECT_EQ(lines, (std::vector<std::string>{"日本", "語テ", "キス", "ト"}));
    for (const Line& l : wrap({{"日本語 テキスト です", Bold}}, 7)) EXPECT_LE(l.width(), 7);
    // A hard newline, a long word, and prefixes.
    lines = texts(wrap({{"ab\nabcdefghij", Plain}}, 4, {{"- ", Plain}}, {{"  ", Plain}}));
    EXPECT_EQ(lines, (std::vector<std::string>{"- ab", "  ab", "  cd", "  ef", "  gh", "  ij"}));
    // Styles survive wrapping.
    auto styled = wrap({{"plain ", Plain}, {"bold words here", Bold}}, 12);
    ASSERT_EQ(styled.size(), 2u);
    EXPECT_EQ(styled[0].spans.back().style, Bold);
}

TEST(UiMarkdown, InlineStyles) {
    auto lines = render_markdown("Some **bold**, *italic*, `code` and ~~gone~~.", 80);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text(), "Some bold, italic, code and gone.");
    EXPECT_EQ(find_span(lines, "bold")->style, Bold);
    EXPECT_EQ(find_span(lines, "italic")->style, Italic);
    EXPECT_EQ(find_span(lines, "code")->style, Code);
    EXPECT_EQ(find_span(lines, "gone")->style, Strike);
    lines = render_markdown("A [link](http://x.org) and <b>html</b> &amp; more", 80);
    EXPECT_EQ(lines[0].text(), "A link (http://x.org) and <b>html</b> & more");
    EXPECT_TRUE(find_span(lines, "link")->style & Link);
}

TEST(UiMarkdown, HeadingsParagraphsAndRules) {
    auto lines = render_markdown("# Title\n\nFirst para\ngoes on.\n\n## Sub\n\n---\n\nend", 20);
    ASSERT_EQ(lines.size(), 9u);
    EXPECT_EQ(lines[0].text(), "Title");
    EXPECT_TRUE(lines[0].spans[0].style & Heading);
    EXPECT_TRUE(lines[0].spans[0].style & Underline);
    EXPECT_EQ(lines[2].text(), "First para goes on.");
    EXPECT_EQ(lines[4].text(), "Sub");
    EXPECT_EQ(text_width(lines[6].text()), 20);  // the rule spans the width
    EXPECT_EQ(lines.back().text(), "end");
}

TEST(UiMarkdown, FencedCodeBlockHasItsOwnBackground) {
    auto lines = render_markdown("Before:\n\n```cpp\nint x = 1;\n\tif (x) {}\n```\n\nAfter.", 30);
    EXPECT_EQ(lines[0].text(), "Before:");
    EXPECT_EQ(lines[1].text(), "");
    ASSERT_GE(lines.size(), 7u);
    EXPECT_EQ(lines[2].fill, CodeBlock);
    EXPECT_NE(lines[2].text().find("cpp"), std::string::npos);  // the language label
    EXPECT_EQ(lines[3].text(), pad_right(" int x = 1;", 30));
    EXPECT_EQ(lines[4].text(), pad_right("     if (x) {}", 30));  // tab -> spaces
    for (int i = 2; i <= 4; ++i) {
        EXPECT_EQ(lines[i].width(), 30);
        EXPECT_TRUE(lines[i].spans.back().style & CodeBlock);
    }
    EXPECT_EQ(lines.back().text(), "After.");
}

TEST(UiMarkdown, ListsIndentTheirContinuationLines) {
    auto lines = render_markdown("- one\n- two is a longer item\n  - nested\n\n1. first\n2. second", 16);
    EXPECT_EQ(texts(lines), (std::vector<std::string>{"• one", "• two is a", "  longer item", "  ◦ nested", "",
                                                      "1. first", "2. second"}));
}

TEST(UiMarkdown, TablesAreAligned) {
    auto lines = render_markdown("| name | n |\n|:-----|--:|\n| alpha | 1 |\n| 日本 | 12345 |\n", 40);
    ASSERT_EQ(lines.size(), 4u);
    EXPECT_EQ(lines[0].text(), "name  │     n");
    EXPECT_EQ(lines[1].text(), "──────┼──────");
    EXPECT_EQ(lines[2].text(), "alpha │     1");
    EXPECT_EQ(lines[3].text(), "日本  │ 12345");
    EXPECT_TRUE(lines[0].spans[0].style & Bold);
    // Too wide for the pane: columns shrink, rows stay aligned.
    lines = render_markdown("| a | b |\n|---|---|\n| " + std::string(40, 'x') + " | " + std::string(30, 'y') + " |\n", 30);
    for (const Line& l : lines) EXPECT_EQ(l.width(), lines[0].width());
    EXPECT_LE(lines[0].width(), 30);
    EXPECT_NE(lines[2].text().find("…"), std::string::npos);
}

TEST(UiMarkdown, StreamingPrefixEndsAtCompleteBlocks) {
    EXPECT_EQ(complete_prefix("partial para"), 0u);
    EXPECT_EQ(complete_prefix("para one\n\npara two"), 10u);
    EXPECT_EQ(complete_prefix("x\n\n```\ncode\n\nmore"), 3u);  // the blank line inside a fence is no boundary
    EXPECT_EQ(complete_prefix("x\n\n```\ncode\n```\nafter"), 16u);
    EXPECT_EQ(complete_prefix("~~~~\na\n~~~\n\n"), 0u);          // a shorter fence does not close
}

TEST(UiGauges, Formatting) {
    EXPECT_EQ(fmt_rate(0), "0");
    EXPECT_EQ(fmt_rate(4.356), "4.36");
    EXPECT_EQ(fmt_rate(18.62), "18.6");
    EXPECT_EQ(fmt_rate(871.8), "872");
    EXPECT_EQ(fmt_rate(36175), "36.2k");
    EXPECT_EQ(fmt_bytes(512), "512 B");
    EXPECT_EQ(fmt_bytes(5'500'000'000ull), "5.5 GB");
    EXPECT_EQ(fmt_eta(7.4), "7s");
    EXPECT_EQ(fmt_eta(184), "3m04s");
    EXPECT_EQ(fmt_eta(3720), "1h02m");
    EXPECT_EQ(progress_bar(0, 10, 12), "[          ]");
    EXPECT_EQ(progress_bar(10, 10, 12), "[██████████]");
    EXPECT_EQ(progress_bar(1, 2, 7), "[██▌  ]");
    EXPECT_EQ(sparkline({1, 2, 4, 8}, 4), "▂▃▅█");
    EXPECT_EQ(sparkline({8, 0}, 4), "  █▁");
    EXPECT_EQ(sparkline({}, 3), "   ");
}

TEST(UiGauges, LinesFitTheWidthAndShowTheFigures) {
    Series tok;
    for (double v : {3.0, 4.0, 5.0, 4.5}) tok.push(v);
    GaugeInput in;
    in.s.phase = StatsSnapshot::Phase::Decode;
    in.s.tok_s = 4.5;
    in.s.n_ctx_used = 1234, in.s.n_ctx = 4096;
    in.s.rss_bytes = 3'200'000'000ull, in.s.memory_budget = 4'000'000'000ull;
    in.s.expert_hits = 71, in.s.expert_misses = 29;
    in.s.bytes_read_total = 1, in.s.disk_mb_s = 850;
    in.tok_s = &tok;
    for (int w : {40, 80, 120, 200}) {
        auto lines = gauge_lines(in, w, 2);
        ASSERT_EQ(lines.size(), 2u);
        for (const Line& l : lines) EXPECT_EQ(l.width(), w) << l.text();
    }
    const std::string l80 = gauge_lines(in, 80, 2)[0].text();
    EXPECT_NE(l80.find("tok/s 4.50"), std::string::npos) << l80;
    EXPECT_NE(l80.find("cache 71%"), std::string::npos) << l80;
    EXPECT_NE(l80.find("disk 850 MB/s"), std::string::npos) << l80;
    EXPECT_NE(l80.find("mem 3.2 GB / 4.0 GB"), std::string::npos) << l80;
    EXPECT_NE(gauge_lines(in, 120, 2)[0].text().find("ctx 1234/4096"), std::string::npos);
    EXPECT_NE(gauge_lines(in, 120, 2)[0].text().find("▅▇█▇"), std::string::npos);  // the sparkline

    in.s.phase = StatsSnapshot::Phase::Prompt;
    in.s.prompt_done = 100, in.s.prompt_total = 400, in.s.prompt_tok_s = 50, in.s.prompt_eta_s = 6;
    const std::string p = gauge_lines(in, 80, 2)[1].text();
    EXPECT_NE(p.find("100/400 tok"), std::string::npos) << p;
    EXPECT_NE(p.find("ETA 6s"), std::string::npos) << p;
    EXPECT_NE(p.find("█"), std::string::npos) << p;
    // One row: the prompt bar takes it.
    EXPECT_NE(gauge_lines(in, 80, 1)[0].text().find("100/400"), std::string::npos);
    // The GPU backend: its time per token and the VRAM expert cache's hit rate, when there is room.
    in.s.phase = StatsSnapshot::Phase::Decode;
    in.s.vram_bytes = 16ull << 30, in.s.t_gpu = 0.0064, in.s.gpu_cache_hits = 3, in.s.gpu_cache_misses = 1;
    const std::string g = gauge_lines(in, 140, 2)[0].text();
    EXPECT_NE(g.find("gpu 6.4 ms · vram 75%"), std::string::npos) << g;
    EXPECT_EQ(gauge_lines(in, 80, 2)[0].text().find("gpu"), std::string::npos);  // dropped first when narrow
    EXPECT_NE(gauge_lines(in, 80, 2)[0].text().find("cache 71%"), std::string::npos);
    // Nothing measured by streaming yet: dashes, not zeros.
    GaugeInput none;
    EXPECT_NE(gauge_lines(none, 80, 2)[0].text().find("cache –"), std::string::npos);
}

TEST(UiLayout, At80x24EveryPaneHasRoom) {
    const Layout l = compute_layout(80, 24, {true, 1});
    EXPECT_FALSE(l.list_shown);  // too narrow for the list
    EXPECT_EQ(l.header, (Rect{0, 0, 1, 80}));
    EXPECT_EQ(l.gauges, (Rect{22, 0, 2, 80}));
    EXPECT_EQ(l.input, (Rect{21, 0, 1, 80}));
    EXPECT_EQ(l.rule, (Rect{20, 0, 1, 80}));
    EXPECT_EQ(l.chat, (Rect{1, 0, 19, 80}));
    // A multi-line input grows, up to a third of the body.
    EXPECT_EQ(compute_layout(80, 24, {true, 4}).input.h, 4);
    EXPECT_EQ(compute_layout(80, 24, {true, 50}).input.h, 7);
}

TEST(UiLayout, ResizeShowsTheListOnWideTerminalsAndPanesNeverOverlap) {
    const Layout wide = compute_layout(160, 50, {true, 2});
    EXPECT_TRUE(wide.list_shown);
    EXPECT_EQ(wide.list.w, kListWidth);
    EXPECT_EQ(wide.chat.x, kListWidth + 1);
    EXPECT_EQ(wide.chat.w, 160 - kListWidth - 1);
    EXPECT_FALSE(compute_layout(160, 50, {false, 2}).list_shown);
    for (int cols : {10, 40, 80, 99, 100, 132, 300})
        for (int rows : {1, 3, 5, 8, 12, 24, 60}) {
            const Layout l = compute_layout(cols, rows, {true, 3});
            int used = l.header.h + l.gauges.h + l.chat.h + l.rule.h + l.input.h;
            EXPECT_EQ(used, rows) << cols << "x" << rows;
            EXPECT_GE(l.input.h, 1);
            EXPECT_EQ(l.chat.w + (l.list_shown ? l.list.w + 1 : 0), cols);
            EXPECT_LE(l.gauges.y + l.gauges.h, rows);
        }
}

}  // namespace
}  // namespace sluice::ui
