#include "ui/transcript.h"

#include <algorithm>

#include "ui/markdown.h"

namespace sluice::ui {

void Transcript::clear() {
    entries_.clear();
    streaming_ = -1;
    scroll_ = 0;
    touch();
}

void Transcript::add(Entry::Kind k, std::string text) {
    Entry e;
    e.kind = k;
    e.text = std::move(text);
    entries_.push_back(std::move(e));
    touch();
}

void Transcript::append_reply(const std::string& piece, bool thinking) {
    if (!replying()) {
        Entry e;
        e.kind = Entry::Assistant;
        e.streaming = true;
        streaming_ = int(entries_.size());
        entries_.push_back(std::move(e));
    }
    Entry& e = entries_[size_t(streaming_)];
    (thinking ? e.thinking : e.text) += piece;
    e.width = -1;
    touch();
}

void Transcript::finish_reply(const std::string& footer) {
    if (!replying()) append_reply("", false);
    Entry& e = entries_[size_t(streaming_)];
    streaming_ = -1;
    e.streaming = false;
    e.footer = footer;
    e.width = -1;
    touch();
}

void Transcript::add_reply(std::string text, std::string thinking, std::string footer) {
    Entry e;
    e.kind = Entry::Assistant;
    e.text = std::move(text);
    e.thinking = std::move(thinking);
    e.footer = std::move(footer);
    entries_.push_back(std::move(e));
    touch();
}

void Transcript::set_show_thinking(bool on) {
    show_thinking_ = on;
    for (Entry& e : entries_) e.width = -1;
    touch();
}

void Transcript::render(Entry& e, int width) {
    e.lines.clear();
    e.width = width;
    e.show_thinking = show_thinking_;
    switch (e.kind) {
    case Entry::User:
        e.lines = wrap({{sanitize(e.text), Plain}}, width, {{"❯ ", uint16_t(Accent | Bold)}}, {{"  ", Plain}});
        break;
    case Entry::Info:
        e.lines = wrap({{sanitize(e.text), Dim}}, width);
        break;
    case Entry::Error:
        e.lines = wrap({{sanitize(e.text), ErrorText}}, width, {{"error: ", uint16_t(ErrorText | Bold)}}, {{"  ", Plain}});
        break;
    case Entry::Assistant: {
        std::string th = e.thinking;
        while (!th.empty() && (th.back() == '\n' || th.back() == ' ')) th.pop_back();
        if (!th.empty()) {
            if (show_thinking_) {
                for (Line& l : wrap({{sanitize(th), uint16_t(Dim | Italic)}}, width, {{"┊ ", Dim}}, {{"┊ ", Dim}}))
                    e.lines.push_back(std::move(l));
            } else {
                const int words = int(std::count(th.begin(), th.end(), ' ')) + 1;
                e.lines.push_back({{{"▸ thinking (" + std::to_string(words) + " words hidden; /think on shows it)", Dim}}});
            }
            if (!e.text.empty()) e.lines.push_back({});
        }
        if (e.streaming) {
            // Complete blocks as Markdown (re-rendered only when a block completes), the rest raw.
            const size_t done = complete_prefix(e.text);
            if (done != e.md_len || e.md_lines.empty() != (done == 0) || e.width != width) {
                e.md_len = done;
                e.md_lines = done ? render_markdown(std::string_view(e.text).substr(0, done), width) : std::vector<Line>{};
            }
            e.lines.insert(e.lines.end(), e.md_lines.begin(), e.md_lines.end());
            std::string tail = e.text.substr(done);
            if (!tail.empty()) {
                if (done) e.lines.push_back({});
                for (Line& l : wrap({{sanitize(tail), Plain}}, width)) e.lines.push_back(std::move(l));
            }
            e.lines.push_back({{{"▌", Accent}}});  // the cursor of a reply in progress
        } else {
            for (Line& l : render_markdown(e.text, width)) e.lines.push_back(std::move(l));
            e.md_lines.clear();
            for (Line& l : wrap({{e.footer, Dim}}, width)) e.lines.push_back(std::move(l));
        }
        break;
    }
    }
}

const std::vector<Line>& Transcript::lines(int width) {
    bool any = dirty_ || width != width_;
    for (Entry& e : entries_)
        if (e.width != width || e.show_thinking != show_thinking_) {
            render(e, width);
            any = true;
        }
    if (!any) return all_;
    const int before = int(all_.size());
    all_.clear();
    for (size_t i = 0; i < entries_.size(); ++i) {
        if (i) all_.push_back({});
        all_.insert(all_.end(), entries_[i].lines.begin(), entries_[i].lines.end());
    }
    // Scrolled back: keep the view where it was while lines are added below.
    if (scroll_ > 0 && width == width_) scroll_ = std::max(0, scroll_ + int(all_.size()) - before);
    width_ = width;
    dirty_ = false;
    return all_;
}

void Transcript::scroll_by(int n, int view_h) {
    const int max_scroll = std::max(0, int(all_.size()) - view_h);
    scroll_ = std::clamp(scroll_ + n, 0, max_scroll);
}

}  // namespace sluice::ui
