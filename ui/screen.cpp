#include "ui/screen.h"

#define NCURSES_NOMACROS  // curses macros (clear, erase, move...) would clash with member names
#include <curses.h>

#include <cstdio>
#include <cstdlib>

namespace sluice::ui {

namespace {
enum Pair : short { PAccent = 1, PCode, PCodeBlock, PError, PHeading, PLink };
}

Screen::Screen() {
    initscr();
    raw();  // Ctrl-C, Ctrl-Z reach us as keys
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    mousemask(BUTTON4_PRESSED | BUTTON5_PRESSED, nullptr);
    mouseinterval(0);
    define_key("\033[200~", kKeyPasteBegin);
    define_key("\033[201~", kKeyPasteEnd);
    std::printf("\033[?2004h");  // bracketed paste on
    std::fflush(stdout);
    // https://no-color.org: present and not empty turns colour off; attributes stay.
    const char* nc = std::getenv("NO_COLOR");
    color_ = has_colors() && !(nc && *nc);
    if (color_) {
        start_color();
        use_default_colors();
        const short code_bg = COLORS >= 256 ? 236 : COLOR_BLUE;
        init_pair(PAccent, COLOR_CYAN, -1);
        init_pair(PCode, COLOR_YELLOW, -1);
        init_pair(PCodeBlock, COLORS >= 256 ? 252 : COLOR_WHITE, code_bg);
        init_pair(PError, COLOR_RED, -1);
        init_pair(PHeading, COLOR_MAGENTA, -1);
        init_pair(PLink, COLOR_BLUE, -1);
    }
}

Screen::~Screen() {
    std::printf("\033[?2004l");
    std::fflush(stdout);
    endwin();
}

int Screen::rows() const { return LINES; }
int Screen::cols() const { return COLS; }

int Screen::attr(uint16_t s) const {
    int a = A_NORMAL;
    if (s & Bold) a |= A_BOLD;
    if (s & Italic) a |= A_ITALIC;
    if (s & (Underline | Link)) a |= A_UNDERLINE;
    if (s & (Dim | Strike)) a |= A_DIM;
    if (s & Selected) a |= A_REVERSE;
    if (!color_) {
        // Without colour, emphasis is carried by attributes alone.
        if (s & (Accent | ErrorText | Heading | Code)) a |= A_BOLD;
        return a;
    }
    if (s & CodeBlock) a |= COLOR_PAIR(PCodeBlock);
    else if (s & ErrorText) a |= COLOR_PAIR(PError);
    else if (s & Code) a |= COLOR_PAIR(PCode);
    else if (s & Heading) a |= COLOR_PAIR(PHeading) | A_BOLD;
    else if (s & Link) a |= COLOR_PAIR(PLink);
    else if (s & Accent) a |= COLOR_PAIR(PAccent);
    return a;
}

void Screen::begin_frame() { erase(); }

void Screen::draw(int y, int x, int w, const Line& l, uint16_t extra) {
    if (y < 0 || y >= LINES || w <= 0) return;
    int used = 0;
    move(y, x);
    for (const Span& s : l.spans) {
        if (used >= w) break;
        std::string t = s.text;
        const int tw = text_width(t);
        if (used + tw > w) t = fit(t, w - used);
        attrset(attr(uint16_t(s.style | extra)));
        addstr(t.c_str());
        used += text_width(t);
    }
    if (used < w && (l.fill || extra)) {
        attrset(attr(uint16_t(l.fill | extra)));
        for (; used < w; ++used) addch(' ');
    }
    attrset(A_NORMAL);
}

void Screen::fill(const Rect& r, uint16_t style) {
    attrset(attr(style));
    for (int y = r.y; y < r.y + r.h; ++y) {
        move(y, r.x);
        for (int x = 0; x < r.w; ++x) addch(' ');
    }
    attrset(A_NORMAL);
}

void Screen::end_frame(int cy, int cx) {
    if (cy >= 0) {
        move(cy, cx);
        curs_set(1);
    } else {
        curs_set(0);
    }
    refresh();
}

}  // namespace sluice::ui
