// Screen text: styled spans, UTF-8 walking, display width (wide characters take two cells) and word
// wrapping into lines of at most `width` cells. Nothing here touches the terminal.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::ui {

// Style bits; the drawing code maps them to attributes and colours (or to attributes only, NO_COLOR).
enum Style : uint16_t {
    Plain = 0,
    Bold = 1 << 0,
    Italic = 1 << 1,
    Underline = 1 << 2,
    Code = 1 << 3,       // inline code
    CodeBlock = 1 << 4,  // fenced/indented code: its own background, to the end of the line
    Heading = 1 << 5,
    Dim = 1 << 6,        // thinking, notes, rules
    Link = 1 << 7,
    Accent = 1 << 8,     // the user's turns, highlights
    ErrorText = 1 << 9,
    Strike = 1 << 10,
    Selected = 1 << 11,  // the current row of a list
};

struct Span {
    std::string text;
    uint16_t style = Plain;
    bool operator==(const Span&) const = default;
};

struct Line {
    std::vector<Span> spans;
    uint16_t fill = Plain;  // style of the cells past the text (a code block's background)
    std::string text() const;  // the characters without styles
    int width() const;
};

// Sets LC_CTYPE to the environment's locale, or C.UTF-8 when that is not UTF-8 (widths and ncursesw
// need a UTF-8 locale). Returns false if none could be set.
bool ensure_utf8_locale();

// Decodes one code point at s[i] and advances i; ill-formed bytes give U+FFFD (one byte consumed).
uint32_t next_cp(std::string_view s, size_t& i);
void append_utf8(std::string& out, uint32_t cp);
// Cells a code point takes: 0 (combining), 1 or 2.
int cp_width(uint32_t cp);
int text_width(std::string_view s);
// Control characters (other than newline) become U+FFFD; a tab becomes spaces to the next multiple of 4.
std::string sanitize(std::string_view s);
// The longest prefix of s that fits `cells`, with "…" when cut.
std::string fit(std::string_view s, int cells);
std::string pad_right(std::string_view s, int cells);  // fit, then spaces to exactly `cells`

// Word wrap: breaks after spaces, a word longer than the line is cut, '\n' forces a break, spaces at
// a break are dropped. Every line starts with `first` (the first line) or `rest` (the others).
std::vector<Line> wrap(const std::vector<Span>& spans, int width, const std::vector<Span>& first = {},
                       const std::vector<Span>& rest = {});

}  // namespace sluice::ui
