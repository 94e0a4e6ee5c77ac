// The gauge bar: figures from the engine's StatsSnapshot formatted into at most two lines that fit
// a width (fields drop their sparklines, then themselves, as the line narrows). Pure strings; the
// caller samples the snapshot on its own clock and keeps the recent values for the sparklines.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "engine/stats.h"
#include "ui/text.h"

namespace sluice::ui {

// Recent values of one figure (tokens/s, disk MB/s), one per UI tick.
class Series {
public:
    explicit Series(size_t cap = 64) : cap_(cap) {}
    void push(double v);
    const std::deque<double>& values() const { return v_; }

private:
    size_t cap_;
    std::deque<double> v_;
};

// The last `cells` values as block glyphs ▁..█ scaled to their maximum (blank when all zero).
std::string sparkline(const std::deque<double>& v, int cells);
std::string fmt_rate(double x);        // 0.42, 12.3, 123, 1.2k
std::string fmt_bytes(uint64_t b);     // 512 B, 3.4 MB, 12.0 GB (decimal)
std::string fmt_eta(double seconds);   // 7s, 3m04s, 1h02m
// [████▌     ] with eighth-blocks, `cells` wide including the brackets.
std::string progress_bar(int64_t done, int64_t total, int cells);

struct GaugeInput {
    StatsSnapshot s;
    const Series* tok_s = nullptr;
    const Series* disk = nullptr;
    std::string hint;  // shown on the second line when no prompt is being processed
};

// `rows` lines (1 or 2) of exactly `width` cells.
std::vector<Line> gauge_lines(const GaugeInput& in, int width, int rows);

}  // namespace sluice::ui
