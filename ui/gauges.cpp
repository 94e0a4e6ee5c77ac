#include "ui/gauges.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sluice::ui {

void Series::push(double v) {
    v_.push_back(v);
    while (v_.size() > cap_) v_.pop_front();
}

std::string sparkline(const std::deque<double>& v, int cells) {
    static const char* kBars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    std::string out;
    if (cells <= 0) return out;
    const size_t n = std::min(v.size(), size_t(cells));
    double mx = 0;
    for (size_t i = v.size() - n; i < v.size(); ++i) mx = std::max(mx, v[i]);
    for (int i = 0; i < cells - int(n); ++i) out += ' ';
    for (size_t i = v.size() - n; i < v.size(); ++i) {
        if (mx <= 0 || v[i] <= 0) {
            out += mx <= 0 ? " " : kBars[0];
            continue;
        }
        const int k = std::clamp(int(std::lround(v[i] / mx * 7)), 0, 7);
        out += kBars[k];
    }
    return out;
}

std::string fmt_rate(double x) {
    char b[32];
    if (!(x > 0)) return "0";
    if (x < 10) std::snprintf(b, sizeof b, "%.2f", x);
    else if (x < 100) std::snprintf(b, sizeof b, "%.1f", x);
    else if (x < 10000) std::snprintf(b, sizeof b, "%.0f", x);
    else std::snprintf(b, sizeof b, "%.1fk", x / 1000);
    return b;
}

std::string fmt_bytes(uint64_t v) {
    char b[32];
    const double x = double(v);
    if (x < 1e3) std::snprintf(b, sizeof b, "%llu B", (unsigned long long)v);
    else if (x < 1e6) std::snprintf(b, sizeof b, "%.1f kB", x / 1e3);
    else if (x < 1e9) std::snprintf(b, sizeof b, "%.1f MB", x / 1e6);
    else std::snprintf(b, sizeof b, "%.1f GB", x / 1e9);
    return b;
}

std::string fmt_eta(double s) {
    char b[32];
    if (!(s >= 0) || s > 1e7) return "?";
    const long t = std::lround(s);
    if (t < 60) std::snprintf(b, sizeof b, "%lds", t);
    else if (t < 3600) std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
    else std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, t / 60 % 60);
    return b;
}

std::string progress_bar(int64_t done, int64_t total, int cells) {
    static const char* kEighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    const int inner = std::max(1, cells - 2);
    const double f = total > 0 ? std::clamp(double(done) / double(total), 0.0, 1.0) : 0;
    const int eighths = int(f * inner * 8);
    std::string out = "[";
    int used = 0;
    for (; used < eighths / 8; ++used) out += "█";
    if (used < inner && eighths % 8) {
        out += kEighths[eighths % 8];
        ++used;
    }
    for (; used < inner; ++used) out += ' ';
    return out + "]";
}

namespace {

// One gauge: a label, a value, an optional sparkline. `full` with the sparkline, `bare` without.
struct Field {
    std::string label, value, spark;
    uint16_t style = Plain;
};

void append_fields(Line& l, const std::vector<Field>& fields, int width) {
    // Drop sparklines from the right, then whole fields from the right, until the line fits.
    std::vector<Field> f = fields;
    auto len = [&] {
        int w = 0;
        for (size_t i = 0; i < f.size(); ++i)
            w += (i ? 3 : 0) + text_width(f[i].label) + 1 + text_width(f[i].value) +
                 (f[i].spark.empty() ? 0 : 1 + text_width(f[i].spark));
        return w;
    };
    for (size_t i = f.size(); i-- > 0 && len() > width;) f[i].spark.clear();
    while (f.size() > 1 && len() > width) f.pop_back();
    for (size_t i = 0; i < f.size(); ++i) {
        if (i) l.spans.push_back({" │ ", Dim});
        l.spans.push_back({f[i].label + " ", Dim});
        l.spans.push_back({f[i].value, uint16_t(Bold | f[i].style)});
        if (!f[i].spark.empty()) l.spans.push_back({" " + f[i].spark, Accent});
    }
}

Line finish(Line l, int width) {
    const int w = l.width();
    if (w > width) {
        // Cut the last spans (a field list only overflows at absurd widths).
        Line cut;
        int used = 0;
        for (Span& s : l.spans) {
            const int sw = text_width(s.text);
            if (used + sw > width) {
                cut.spans.push_back({fit(s.text, width - used), s.style});
                used = width;
                break;
            }
            used += sw;
            cut.spans.push_back(std::move(s));
        }
        l = std::move(cut);
    }
    const int pad = width - l.width();
    if (pad > 0) l.spans.push_back({std::string(size_t(pad), ' '), Plain});
    return l;
}

}  // namespace

std::vector<Line> gauge_lines(const GaugeInput& in, int width, int rows) {
    const StatsSnapshot& s = in.s;
    const int spark = width >= 100 ? 12 : 8;
    std::vector<Field> f;
    f.push_back({"tok/s", fmt_rate(s.tok_s), in.tok_s ? sparkline(in.tok_s->values(), spark) : ""});
    const uint64_t looks = s.expert_hits + s.expert_misses;
    char hit[32];
    if (looks) std::snprintf(hit, sizeof hit, "%s%.0f%%", s.hit_rate_estimated ? "~" : "", 100.0 * double(s.expert_hits) / double(looks));
    f.push_back({"cache", looks ? hit : "–", ""});
    f.push_back({"disk", s.bytes_read_total ? fmt_rate(s.disk_mb_s) + " MB/s" : "–",
                 s.bytes_read_total && in.disk ? sparkline(in.disk->values(), spark) : ""});
    std::string mem = fmt_bytes(s.rss_bytes);
    if (s.memory_budget) mem += " / " + fmt_bytes(s.memory_budget);
    f.push_back({"mem", mem, "", s.memory_budget && s.rss_bytes > s.memory_budget ? uint16_t(ErrorText) : uint16_t(Plain)});
    f.push_back({"ctx", std::to_string(s.n_ctx_used) + "/" + std::to_string(s.n_ctx), ""});
    if (s.vram_bytes) {  // the GPU backend: its time for the last token, the VRAM expert cache's hits
        char g[64];
        int n = s.t_gpu > 0 ? std::snprintf(g, sizeof g, "%.1f ms", s.t_gpu * 1e3) : std::snprintf(g, sizeof g, "–");
        const uint64_t gl = s.gpu_cache_hits + s.gpu_cache_misses;
        if (gl) std::snprintf(g + n, sizeof g - size_t(n), " · vram %.0f%%", 100.0 * double(s.gpu_cache_hits) / double(gl));
        f.push_back({"gpu", g, ""});  // last: the first to go on a narrow terminal
    }

    std::vector<Line> out;
    Line first;
    append_fields(first, f, width);

    Line second;
    if (s.phase == StatsSnapshot::Phase::Prompt && s.prompt_total > 0) {
        const std::string count = " " + std::to_string(s.prompt_done) + "/" + std::to_string(s.prompt_total) + " tok";
        const std::string eta = s.prompt_tok_s > 0 ? " · " + fmt_rate(s.prompt_tok_s) + " tok/s · ETA " + fmt_eta(s.prompt_eta_s) : "";
        const int bar = std::clamp(width - 7 - text_width(count) - text_width(eta), 4, 40);
        second.spans.push_back({"prompt ", Dim});
        second.spans.push_back({progress_bar(s.prompt_done, s.prompt_total, bar), Accent});
        second.spans.push_back({count, Bold});
        second.spans.push_back({eta, Dim});
    } else {
        const char* phase = s.phase == StatsSnapshot::Phase::Loading ? "loading" :
                            s.phase == StatsSnapshot::Phase::Decode ? "generating" :
                            s.phase == StatsSnapshot::Phase::Prompt ? "reading prompt" : "idle";
        second.spans.push_back({phase, uint16_t(s.phase == StatsSnapshot::Phase::Idle ? Dim : Bold)});
        if (!in.hint.empty()) second.spans.push_back({"  " + in.hint, Dim});
    }
    if (rows >= 2) {
        out.push_back(finish(std::move(first), width));
        out.push_back(finish(std::move(second), width));
    } else {
        // One row: the prompt bar replaces the gauges while a prompt is processed.
        out.push_back(finish(s.phase == StatsSnapshot::Phase::Prompt ? std::move(second) : std::move(first), width));
    }
    return out;
}

}  // namespace sluice::ui
