// Where each pane goes for a terminal size: pure arithmetic, recomputed on every resize.
//
//   ┌ header (1) ───────────────────────────────┐
//   │ list │ chat                               │
//   │      │                                    │
//   │      ├─ rule ─────────────────────────────┤
//   │      │ input (1..input_max rows)          │
//   ├ gauges (2) ───────────────────────────────┤
#pragma once

namespace sluice::ui {

struct Rect {
    int y = 0, x = 0, h = 0, w = 0;
    bool empty() const { return h <= 0 || w <= 0; }
    bool operator==(const Rect&) const = default;
};

struct Layout {
    Rect header, list, list_border, chat, rule, input, gauges;
    bool list_shown = false;
};

struct LayoutWants {
    bool list = true;       // the conversation list, where there is room
    int input_lines = 1;    // lines the input needs now
};

constexpr int kListMinCols = 100;  // narrower terminals hide the list pane
constexpr int kListWidth = 28;

Layout compute_layout(int cols, int rows, const LayoutWants& want);

}  // namespace sluice::ui
