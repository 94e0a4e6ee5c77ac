// The chat pane's content: entries (user turns, replies with their thinking and figures, notices,
// errors) rendered to lines at a width, cached per entry so a streaming reply re-renders alone, and
// a scroll position counted in lines from the bottom.
#pragma once
#include <string>
#include <vector>

#include "ui/text.h"

namespace sluice::ui {

struct Entry {
    enum Kind { User, Assistant, Info, Error } kind = Info;
    std::string text;       // user text, the reply's answer (Markdown), or the notice
    std::string thinking;   // a reply's reasoning
    std::string footer;     // a reply's figures
    bool streaming = false; // still being generated: complete blocks rendered, the rest raw
    // Render cache.
    int width = -1;
    bool show_thinking = true;
    std::vector<Line> lines;
    size_t md_len = 0;            // streaming: length of the rendered Markdown prefix
    std::vector<Line> md_lines;
};

class Transcript {
public:
    void clear();
    void add(Entry::Kind k, std::string text);
    // The reply being streamed (created on the first piece).
    void append_reply(const std::string& piece, bool thinking);
    void finish_reply(const std::string& footer);
    bool replying() const { return streaming_ >= 0; }
    void add_reply(std::string text, std::string thinking, std::string footer);  // a stored one

    void set_show_thinking(bool on);
    bool show_thinking() const { return show_thinking_; }

    // All lines at this width (entries separated by a blank line).
    const std::vector<Line>& lines(int width);

    // Scrolling, in lines from the bottom (0: following the end).
    void scroll_by(int lines, int view_h);
    int scroll() const { return scroll_; }
    void scroll_to_end() { scroll_ = 0; }
    size_t size() const { return entries_.size(); }

private:
    void render(Entry& e, int width);
    void touch() { dirty_ = true; }

    std::vector<Entry> entries_;
    int streaming_ = -1;  // the reply being streamed (notices may be added after it)
    bool show_thinking_ = true;
    int scroll_ = 0;
    bool dirty_ = true;
    int width_ = -1;
    std::vector<Line> all_;
};

}  // namespace sluice::ui
