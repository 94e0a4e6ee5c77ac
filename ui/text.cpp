#include "ui/text.h"

#include <langinfo.h>

#include <clocale>
#include <cstring>
#include <cwchar>

namespace sluice::ui {

std::string Line::text() const {
    std::string s;
    for (const Span& sp : spans) s += sp.text;
    return s;
}

int Line::width() const {
    int w = 0;
    for (const Span& sp : spans) w += text_width(sp.text);
    return w;
}

bool ensure_utf8_locale() {
    auto utf8 = [] { return std::strcmp(nl_langinfo(CODESET), "UTF-8") == 0; };
    if (std::setlocale(LC_CTYPE, "") && utf8()) return true;
    for (const char* l : {"C.UTF-8", "C.utf8", "en_US.UTF-8"})
        if (std::setlocale(LC_CTYPE, l) && utf8()) return true;
    return false;
}

uint32_t next_cp(std::string_view s, size_t& i) {
    const uint8_t c = uint8_t(s[i]);
    if (c < 0x80) return s[i++];
    const int n = c >= 0xC2 && c < 0xE0 ? 1 : c >= 0xE0 && c < 0xF0 ? 2 : c >= 0xF0 && c < 0xF5 ? 3 : -1;
    if (n < 0 || i + size_t(n) >= s.size()) {
        ++i;
        return 0xFFFD;
    }
    uint32_t cp = c & (0x3F >> n);
    for (int k = 1; k <= n; ++k) {
        const uint8_t b = uint8_t(s[i + size_t(k)]);
        if ((b & 0xC0) != 0x80) {
            ++i;
            return 0xFFFD;
        }
        cp = cp << 6 | (b & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are ill-formed.
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp < 0xE000)) {
        ++i;
        return 0xFFFD;
    }
    i += size_t(n) + 1;
    return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | cp >> 6);
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | cp >> 12);
        out += char(0x80 | (cp >> 6 & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | cp >> 18);
        out += char(0x80 | (cp >> 12 & 0x3F));
        out += char(0x80 | (cp >> 6 & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

int cp_width(uint32_t cp) {
    if (cp < 0x7F) return cp >= 0x20 ? 1 : 0;
    // The terminal measures with wcwidth in this locale; ours must agree with it.
    const int w = ::wcwidth(wchar_t(cp));
    if (w >= 0) return w;
    return cp >= 0x1100 && (cp <= 0x115F || (cp >= 0x2E80 && cp <= 0xA4CF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
                            (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFF00 && cp <= 0xFF60) ||
                            (cp >= 0x1F300 && cp <= 0x1F64F) || (cp >= 0x20000 && cp <= 0x3FFFD))
               ? 2
               : 1;
}

int text_width(std::string_view s) {
    int w = 0;
    for (size_t i = 0; i < s.size();) w += cp_width(next_cp(s, i));
    return w;
}

std::string sanitize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    int col = 0;
    for (size_t i = 0; i < s.size();) {
        const uint32_t cp = next_cp(s, i);
        if (cp == '\n') {
            out += '\n';
            col = 0;
        } else if (cp == '\t') {
            do out += ' ';
            while (++col % 4);
        } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
            append_utf8(out, 0xFFFD);
            ++col;
        } else {
            append_utf8(out, cp);
            col += cp_width(cp);
        }
    }
    return out;
}

std::string fit(std::string_view s, int cells) {
    if (text_width(s) <= cells) return std::string(s);
    if (cells <= 0) return {};
    std::string out;
    int w = 0;
    for (size_t i = 0; i < s.size();) {
        const size_t start = i;
        const int cw = cp_width(next_cp(s, i));
        if (w + cw > cells - 1) break;
        out.append(s.substr(start, i - start));
        w += cw;
    }
    return out + "…";
}

std::string pad_right(std::string_view s, int cells) {
    std::string out = fit(s, cells);
    for (int w = text_width(out); w < cells; ++w) out += ' ';
    return out;
}

namespace {

struct Glyph {
    std::string bytes;
    uint16_t style;
    int width;
    bool space, newline;
};

void emit_line(std::vector<Line>& out, const std::vector<Span>& prefix, const std::vector<Glyph>& g, size_t from,
               size_t to) {
    Line line;
    line.spans = prefix;
    while (to > from && g[to - 1].space) --to;  // no trailing spaces at a break
    for (size_t k = from; k < to; ++k) {
        if (!line.spans.empty() && line.spans.back().style == g[k].style && k > from)
            line.spans.back().text += g[k].bytes;
        else
            line.spans.push_back({g[k].bytes, g[k].style});
    }
    out.push_back(std::move(line));
}

int spans_width(const std::vector<Span>& v) {
    int w = 0;
    for (const Span& s : v) w += text_width(s.text);
    return w;
}

}  // namespace

std::vector<Line> wrap(const std::vector<Span>& spans, int width, const std::vector<Span>& first,
                       const std::vector<Span>& rest) {
    std::vector<Glyph> g;
    for (const Span& sp : spans)
        for (size_t i = 0; i < sp.text.size();) {
            const size_t start = i;
            const uint32_t cp = next_cp(sp.text, i);
            g.push_back({std::string(sp.text.substr(start, i - start)), sp.style, cp_width(cp), cp == ' ', cp == '\n'});
        }
    std::vector<Line> out;
    bool first_line = true;
    auto prefix = [&]() -> const std::vector<Span>& { return first_line ? first : rest; };
    auto avail = [&] { return std::max(1, width - spans_width(prefix())); };
    auto flush = [&](size_t from, size_t to) {
        emit_line(out, prefix(), g, from, to);
        first_line = false;
    };
    size_t line_start = 0, brk = SIZE_MAX;  // brk: just after the last space on this line
    int w = 0;
    bool wrapped = false;  // this line began at a soft break: its leading spaces go
    for (size_t k = 0; k < g.size(); ++k) {
        if (g[k].newline) {
            flush(line_start, k);
            line_start = k + 1, w = 0, brk = SIZE_MAX, wrapped = false;
            continue;
        }
        if (w + g[k].width > avail() && k > line_start) {
            const size_t cut = brk != SIZE_MAX && brk > line_start ? brk : k;
            flush(line_start, cut);
            line_start = cut, brk = SIZE_MAX, wrapped = true, w = 0;
            for (size_t j = line_start; j < k; ++j) w += g[j].width;
        }
        if (wrapped && k == line_start && g[k].space) {
            ++line_start;
            continue;
        }
        w += g[k].width;
        if (g[k].space) brk = k + 1;
    }
    if (line_start < g.size() || out.empty()) flush(line_start, g.size());
    return out;
}

}  // namespace sluice::ui
