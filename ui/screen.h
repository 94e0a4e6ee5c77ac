// The terminal, through ncursesw: start/stop, styles to attributes (colour unless NO_COLOR), and
// drawing a styled line into a row. The only file besides app.cpp that calls curses.
#pragma once
#include <string>

#include "ui/layout.h"
#include "ui/text.h"

namespace sluice::ui {

// Key codes ncurses reports for the bracketed-paste markers (defined with define_key).
constexpr int kKeyPasteBegin = 0x7F00;
constexpr int kKeyPasteEnd = 0x7F01;

class Screen {
public:
    Screen();   // initscr, raw keys, mouse wheel, bracketed paste, colours
    ~Screen();  // endwin
    Screen(const Screen&) = delete;
    Screen& operator=(const Screen&) = delete;

    int rows() const;
    int cols() const;
    bool color() const { return color_; }

    void begin_frame();                              // erase
    void draw(int y, int x, int w, const Line& l, uint16_t extra = 0);  // clipped to w cells, padded with l.fill
    void fill(const Rect& r, uint16_t style);
    void end_frame(int cursor_y, int cursor_x);      // refresh; cursor -1: hidden

private:
    int attr(uint16_t style) const;
    bool color_ = false;
};

}  // namespace sluice::ui
