#include "ui/markdown.h"

#include <md4c.h>

#include <algorithm>
#include <string>

namespace sluice::ui {

namespace {

std::string decode_entity(std::string_view e) {
    if (e == "&amp;") return "&";
    if (e == "&lt;") return "<";
    if (e == "&gt;") return ">";
    if (e == "&quot;") return "\"";
    if (e == "&apos;" || e == "&#39;") return "'";
    if (e == "&nbsp;") return " ";
    if (e.size() > 3 && e[1] == '#') {
        const bool hex = e[2] == 'x' || e[2] == 'X';
        const std::string digits(e.substr(hex ? 3 : 2, e.size() - (hex ? 4 : 3)));
        try {
            const unsigned long cp = std::stoul(digits, nullptr, hex ? 16 : 10);
            std::string out;
            append_utf8(out, cp > 0 && cp <= 0x10FFFF && !(cp >= 0xD800 && cp < 0xE000) ? uint32_t(cp) : 0xFFFD);
            return out;
        } catch (...) {
        }
    }
    return std::string(e);
}

void add(std::vector<Span>& v, std::string text, uint16_t style) {
    if (text.empty()) return;
    if (!v.empty() && v.back().style == style)
        v.back().text += text;
    else
        v.push_back({std::move(text), style});
}

int spans_width(const std::vector<Span>& v) {
    int w = 0;
    for (const Span& s : v) w += text_width(s.text);
    return w;
}

// Cuts spans to `cells` (with "…" when cut) and pads them to exactly `cells` as `align` says.
std::vector<Span> fit_spans(const std::vector<Span>& v, int cells, MD_ALIGN align) {
    std::vector<Span> out;
    const int w = spans_width(v);
    if (w > cells) {
        int used = 0;
        for (const Span& s : v) {
            const int sw = text_width(s.text);
            if (used + sw <= cells - 1) {
                out.push_back(s);
                used += sw;
                continue;
            }
            std::string part = fit(s.text, cells - used);  // ends with "…"
            out.push_back({part, s.style});
            used += text_width(part);
            break;
        }
        if (used < cells) out.push_back({std::string(size_t(cells - used), ' '), Plain});
        return out;
    }
    const int gap = cells - w;
    const int left = align == MD_ALIGN_RIGHT ? gap : align == MD_ALIGN_CENTER ? gap / 2 : 0;
    if (left) out.push_back({std::string(size_t(left), ' '), Plain});
    out.insert(out.end(), v.begin(), v.end());
    if (gap - left) out.push_back({std::string(size_t(gap - left), ' '), Plain});
    return out;
}

class Renderer {
public:
    explicit Renderer(int width) : width_(std::max(8, width)) {}
    std::vector<Line> take() {
        flush_inline(Plain);
        return std::move(out_);
    }

    int enter_block(MD_BLOCKTYPE t, void* d) {
        switch (t) {
        case MD_BLOCK_DOC: break;
        case MD_BLOCK_QUOTE:
            flush_inline(Plain);
            start_block();
            stack_.push_back(Container{});
            break;
        case MD_BLOCK_UL:
        case MD_BLOCK_OL: {
            flush_inline(Plain);
            Container c;
            c.kind = Container::List;
            c.ordered = t == MD_BLOCK_OL;
            c.tight = c.ordered ? static_cast<MD_BLOCK_OL_DETAIL*>(d)->is_tight : static_cast<MD_BLOCK_UL_DETAIL*>(d)->is_tight;
            c.next = c.ordered ? static_cast<MD_BLOCK_OL_DETAIL*>(d)->start : 0;
            if (list_depth() == 0) start_block();
            stack_.push_back(c);
            break;
        }
        case MD_BLOCK_LI: {
            flush_inline(Plain);
            Container& list = stack_.back();
            Container item;
            item.kind = Container::Item;
            const auto* li = static_cast<MD_BLOCK_LI_DETAIL*>(d);
            if (li->is_task)
                item.bullet = li->task_mark == ' ' ? "☐ " : "☑ ";
            else if (list.ordered)
                item.bullet = std::to_string(list.next++) + ". ";
            else
                item.bullet = list_depth() == 1 ? "• " : list_depth() == 2 ? "◦ " : "▪ ";
            item.pending = true;
            if (list.tight) gap_ = false;
            stack_.push_back(item);
            break;
        }
        case MD_BLOCK_HR:
            flush_inline(Plain);
            start_block();
            emit({{std::string(size_t(0), ' '), Plain}}, Dim, true);
            gap_ = true;
            break;
        case MD_BLOCK_H:
            flush_inline(Plain);
            start_block();
            h_level_ = static_cast<MD_BLOCK_H_DETAIL*>(d)->level;
            break;
        case MD_BLOCK_CODE: {
            flush_inline(Plain);
            start_block();
            in_code_ = true;
            code_.clear();
            const auto* cd = static_cast<MD_BLOCK_CODE_DETAIL*>(d);
            lang_.assign(cd->lang.text, cd->lang.size);
            break;
        }
        case MD_BLOCK_HTML: break;
        case MD_BLOCK_P: start_block(); break;
        case MD_BLOCK_TABLE:
            flush_inline(Plain);
            start_block();
            in_table_ = true;
            rows_.clear();
            aligns_.clear();
            break;
        case MD_BLOCK_THEAD: in_head_ = true; break;
        case MD_BLOCK_TBODY: in_head_ = false; break;
        case MD_BLOCK_TR: rows_.push_back({}); break;
        case MD_BLOCK_TH:
        case MD_BLOCK_TD:
            cell_.clear();
            in_cell_ = true;
            if (rows_.size() == 1) aligns_.push_back(static_cast<MD_BLOCK_TD_DETAIL*>(d)->align);
            break;
        }
        return 0;
    }

    int leave_block(MD_BLOCKTYPE t, void*) {
        switch (t) {
        case MD_BLOCK_QUOTE:
            flush_inline(Plain);
            stack_.pop_back();
            gap_ = true;
            break;
        case MD_BLOCK_UL:
        case MD_BLOCK_OL:
            flush_inline(Plain);
            stack_.pop_back();
            gap_ = true;
            break;
        case MD_BLOCK_LI:
            flush_inline(Plain);
            stack_.pop_back();
            break;
        case MD_BLOCK_H:
            flush_inline(uint16_t(Heading | Bold | (h_level_ == 1 ? Underline : 0)));
            gap_ = true;
            break;
        case MD_BLOCK_CODE: emit_code(); in_code_ = false; gap_ = true; break;
        case MD_BLOCK_P: flush_inline(Plain); gap_ = true; break;
        case MD_BLOCK_TH:
        case MD_BLOCK_TD:
            rows_.back().push_back(std::move(cell_));
            cell_.clear();
            in_cell_ = false;
            break;
        case MD_BLOCK_THEAD: head_rows_ = int(rows_.size()); break;
        case MD_BLOCK_TABLE: emit_table(); in_table_ = false; gap_ = true; break;
        default: break;
        }
        return 0;
    }

    int enter_span(MD_SPANTYPE t, void* d) {
        uint16_t s = Plain;
        switch (t) {
        case MD_SPAN_EM: s = Italic; break;
        case MD_SPAN_STRONG: s = Bold; break;
        case MD_SPAN_CODE: s = Code; break;
        case MD_SPAN_DEL: s = Strike; break;
        case MD_SPAN_U: s = Underline; break;
        case MD_SPAN_A: {
            s = Link | Underline;
            const auto* a = static_cast<MD_SPAN_A_DETAIL*>(d);
            hrefs_.push_back({std::string(a->href.text, a->href.size), inline_width()});
            break;
        }
        case MD_SPAN_IMG: add(target(), "[image: ", Dim); break;
        default: break;
        }
        styles_.push_back(s);
        return 0;
    }

    int leave_span(MD_SPANTYPE t, void*) {
        styles_.pop_back();
        if (t == MD_SPAN_A && !hrefs_.empty()) {
            auto [href, start] = hrefs_.back();
            hrefs_.pop_back();
            // Show where a link goes unless its text already says it.
            std::string shown;
            for (const Span& s : target()) shown += s.text;
            if (shown.find(href) == std::string::npos && !href.empty()) add(target(), " (" + href + ")", Dim);
        }
        if (t == MD_SPAN_IMG) add(target(), "]", Dim);
        return 0;
    }

    int text(MD_TEXTTYPE t, const MD_CHAR* p, MD_SIZE n) {
        const std::string_view s(p, n);
        if (in_code_) {
            code_ += s;
            return 0;
        }
        switch (t) {
        case MD_TEXT_SOFTBR: add(target(), " ", style()); break;
        case MD_TEXT_BR: add(target(), in_cell_ ? " " : "\n", style()); break;
        case MD_TEXT_NULLCHAR: add(target(), "\uFFFD", style()); break;
        case MD_TEXT_ENTITY: add(target(), decode_entity(s), style()); break;
        default: add(target(), sanitize(s), style()); break;
        }
        return 0;
    }

private:
    struct Container {
        enum Kind { Quote, List, Item } kind = Quote;
        bool ordered = false, tight = false, pending = false;
        unsigned next = 1;
        std::string bullet;
    };

    uint16_t style() const {
        uint16_t s = Plain;
        for (uint16_t x : styles_) s |= x;
        return s;
    }
    std::vector<Span>& target() { return in_cell_ ? cell_ : inl_; }
    int inline_width() { return spans_width(target()); }
    int list_depth() const {
        int n = 0;
        for (const Container& c : stack_) n += c.kind == Container::List;
        return n;
    }

    // Prefixes for the first and the other lines of the next block: quote bars, list indents, and
    // the bullet of an item whose first line this is.
    void prefixes(std::vector<Span>& first, std::vector<Span>& rest) {
        Container* innermost = nullptr;
        for (Container& c : stack_)
            if (c.kind == Container::Item) innermost = &c;
        for (Container& c : stack_) {
            if (c.kind == Container::Quote) {
                add(first, "▌ ", Dim);
                add(rest, "▌ ", Dim);
            } else if (c.kind == Container::Item) {
                const std::string blank(size_t(text_width(c.bullet)), ' ');
                add(first, &c == innermost && c.pending ? c.bullet : blank, &c == innermost && c.pending ? Accent : Plain);
                add(rest, blank, Plain);
            }
        }
    }
    void consume_bullet() {
        for (Container& c : stack_)
            if (c.kind == Container::Item) c.pending = false;
    }

    void start_block() {
        if (gap_ && !out_.empty()) {
            std::vector<Span> first, rest;
            prefixes(first, rest);
            Line blank;
            for (const Span& s : rest)
                if (s.style == Dim) blank.spans.push_back(s);  // quote bars continue
            out_.push_back(std::move(blank));
        }
        gap_ = false;
    }

    void emit(std::vector<Span> spans, uint16_t style, bool rule = false) {
        std::vector<Span> first, rest;
        prefixes(first, rest);
        if (rule) {
            const int w = std::max(1, width_ - spans_width(first));
            std::string bar;
            for (int i = 0; i < w; ++i) bar += "─";
            Line l;
            l.spans = first;
            l.spans.push_back({bar, Dim});
            out_.push_back(std::move(l));
            return;
        }
        for (Span& s : spans) s.style |= style;
        for (Line& l : wrap(spans, width_, first, rest)) out_.push_back(std::move(l));
        consume_bullet();
    }

    void flush_inline(uint16_t style) {
        if (in_table_) return;
        if (inl_.empty()) {
            h_level_ = 0;
            return;
        }
        emit(std::move(inl_), style);
        inl_.clear();
        h_level_ = 0;
    }

    void emit_code() {
        std::vector<Span> first, rest;
        prefixes(first, rest);
        consume_bullet();
        const int avail = std::max(4, width_ - spans_width(rest));
        auto code_line = [&](std::vector<Span> pre, std::string text, uint16_t style) {
            Line l;
            l.spans = std::move(pre);
            l.spans.push_back({pad_right(text, avail), uint16_t(CodeBlock | style)});
            l.fill = CodeBlock;
            out_.push_back(std::move(l));
        };
        bool first_line = true;
        auto pre = [&] {
            auto p = first_line ? first : rest;
            first_line = false;
            return p;
        };
        if (!lang_.empty()) code_line(pre(), " " + lang_, Dim);
        std::string body = sanitize(code_);
        if (!body.empty() && body.back() == '\n') body.pop_back();
        size_t pos = 0;
        for (;;) {
            const size_t nl = body.find('\n', pos);
            std::string line = " " + body.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
            // Long lines are cut into pieces of the available width; code is not word-wrapped.
            do {
                std::string piece;
                int w = 0;
                size_t i = 0;
                while (i < line.size()) {
                    size_t j = i;
                    const int cw = cp_width(next_cp(line, j));
                    if (w + cw > avail) break;
                    w += cw;
                    i = j;
                }
                if (i == 0 && !line.empty()) i = line.size();  // a glyph wider than the line
                piece = line.substr(0, i);
                line.erase(0, i);
                code_line(pre(), piece, Plain);
            } while (!line.empty());
            if (nl == std::string::npos) break;
            pos = nl + 1;
        }
    }

    void emit_table() {
        std::vector<Span> first, rest;
        prefixes(first, rest);
        consume_bullet();
        size_t ncol = aligns_.size();
        for (const auto& r : rows_) ncol = std::max(ncol, r.size());
        if (ncol == 0) return;
        std::vector<int> w(ncol, 1);
        for (const auto& r : rows_)
            for (size_t c = 0; c < r.size(); ++c) w[c] = std::max(w[c], spans_width(r[c]));
        // Shrink the widest column until the table fits the line; cells are then cut with "…".
        const int avail = width_ - spans_width(rest);
        auto total = [&] {
            int t = 3 * int(ncol - 1);
            for (int x : w) t += x;
            return t;
        };
        while (total() > avail) {
            auto it = std::max_element(w.begin(), w.end());
            if (*it <= 3) break;
            --*it;
        }
        bool first_line = true;
        auto row_line = [&](const std::vector<std::vector<Span>>& r, uint16_t style) {
            Line l;
            l.spans = first_line ? first : rest;
            first_line = false;
            for (size_t c = 0; c < ncol; ++c) {
                if (c) l.spans.push_back({" │ ", Dim});
                static const std::vector<Span> none;
                std::vector<Span> cell = fit_spans(c < r.size() ? r[c] : none, w[c], c < aligns_.size() ? aligns_[c] : MD_ALIGN_DEFAULT);
                for (Span& s : cell) {
                    s.style |= style;
                    l.spans.push_back(std::move(s));
                }
            }
            out_.push_back(std::move(l));
        };
        for (size_t i = 0; i < rows_.size(); ++i) {
            row_line(rows_[i], int(i) < head_rows_ ? Bold : Plain);
            if (int(i) + 1 == head_rows_) {
                Line l;
                l.spans = rest;
                std::string rule;
                for (size_t c = 0; c < ncol; ++c) {
                    if (c) rule += "─┼─";
                    for (int k = 0; k < w[c]; ++k) rule += "─";
                }
                l.spans.push_back({rule, Dim});
                out_.push_back(std::move(l));
            }
        }
    }

    int width_;
    std::vector<Line> out_;
    std::vector<Span> inl_, cell_;
    std::vector<uint16_t> styles_;
    std::vector<Container> stack_;
    std::vector<std::pair<std::string, int>> hrefs_;
    bool gap_ = false;
    unsigned h_level_ = 0;
    bool in_code_ = false;
    std::string code_, lang_;
    bool in_table_ = false, in_head_ = false, in_cell_ = false;
    int head_rows_ = 0;
    std::vector<std::vector<std::vector<Span>>> rows_;
    std::vector<MD_ALIGN> aligns_;
};

}  // namespace

std::vector<Line> render_markdown(std::string_view md, int width) {
    Renderer r(width);
    MD_PARSER p{};
    p.flags = MD_DIALECT_GITHUB | MD_FLAG_NOHTML;
    p.enter_block = [](MD_BLOCKTYPE t, void* d, void* u) { return static_cast<Renderer*>(u)->enter_block(t, d); };
    p.leave_block = [](MD_BLOCKTYPE t, void* d, void* u) { return static_cast<Renderer*>(u)->leave_block(t, d); };
    p.enter_span = [](MD_SPANTYPE t, void* d, void* u) { return static_cast<Renderer*>(u)->enter_span(t, d); };
    p.leave_span = [](MD_SPANTYPE t, void* d, void* u) { return static_cast<Renderer*>(u)->leave_span(t, d); };
    p.text = [](MD_TEXTTYPE t, const MD_CHAR* s, MD_SIZE n, void* u) { return static_cast<Renderer*>(u)->text(t, s, n); };
    md_parse(md.data(), MD_SIZE(md.size()), &p, &r);
    return r.take();
}

size_t complete_prefix(std::string_view text) {
    size_t done = 0, pos = 0;
    char fence = 0;
    size_t fence_len = 0;
    while (pos < text.size()) {
        const size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) break;  // the last line is still being written
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        size_t ind = 0;
        while (ind < line.size() && ind < 4 && line[ind] == ' ') ++ind;
        std::string_view body = line.substr(ind);
        size_t run = 0;
        if (ind < 4 && !body.empty() && (body[0] == '`' || body[0] == '~'))
            while (run < body.size() && body[run] == body[0]) ++run;
        if (fence) {
            if (run >= fence_len && body[0] == fence && body.find_first_not_of(" ", run) == std::string_view::npos) {
                fence = 0;
                done = pos;  // the code block is complete
            }
            continue;
        }
        if (run >= 3) {
            fence = body[0];
            fence_len = run;
            continue;
        }
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) done = pos;
    }
    return done;
}

}  // namespace sluice::ui
