#include "ui/layout.h"

#include <algorithm>

namespace sluice::ui {

Layout compute_layout(int cols, int rows, const LayoutWants& want) {
    Layout l;
    cols = std::max(cols, 1);
    rows = std::max(rows, 1);
    // Small terminals lose the header first, then a gauge row, then the rule above the input.
    const bool header = rows >= 12;
    const int gauges = rows >= 12 ? 2 : rows >= 4 ? 1 : 0;
    const bool rule = rows >= 6;
    int top = 0;
    if (header) {
        l.header = {0, 0, 1, cols};
        top = 1;
    }
    const int bottom = rows - gauges;
    l.gauges = {bottom, 0, gauges, cols};
    const int body_h = bottom - top;
    // The input may grow to a third of the body, keeping at least one chat row.
    const int input_max = std::max(1, std::min(body_h / 3, 10));
    const int input_h = std::clamp(want.input_lines, 1, input_max);

    int x = 0;
    l.list_shown = want.list && cols >= kListMinCols && body_h >= 3;
    if (l.list_shown) {
        const int lw = std::min(kListWidth, cols / 4);
        l.list = {top, 0, body_h, lw};
        l.list_border = {top, lw, body_h, 1};
        x = lw + 1;
    }
    const int w = cols - x;
    l.input = {bottom - input_h, x, input_h, w};
    int chat_bottom = l.input.y;
    if (rule && chat_bottom - top >= 2) {
        l.rule = {chat_bottom - 1, x, 1, w};
        chat_bottom -= 1;
    }
    l.chat = {top, x, std::max(0, chat_bottom - top), w};
    return l;
}

}  // namespace sluice::ui
