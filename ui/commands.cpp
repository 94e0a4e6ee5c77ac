#include "ui/commands.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace sluice::ui {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(uint8_t(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(uint8_t(s.back()))) s.remove_suffix(1);
    return s;
}

std::optional<double> number(std::string_view s) {
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
    return v;
}

}  // namespace

std::optional<Command> parse_command(std::string_view line) {
    line = trim(line);
    if (line.empty() || line[0] != '/') return std::nullopt;
    line.remove_prefix(1);
    size_t sp = 0;
    while (sp < line.size() && !std::isspace(uint8_t(line[sp]))) ++sp;
    Command c;
    for (char ch : line.substr(0, sp)) c.name += char(std::tolower(uint8_t(ch)));
    c.rest = std::string(trim(line.substr(sp)));
    return c;
}

std::string apply_set(SamplerParams& p, std::string_view key, std::string_view value) {
    const auto v = number(trim(value));
    if (!v) return "'" + std::string(value) + "' is not a number";
    const double x = *v;
    if (key == "temp" || key == "temperature") {
        if (x < 0 || x > 5) return "temp must be between 0 (greedy) and 5";
        p.temperature = float(x);
    } else if (key == "top_p") {
        if (x <= 0 || x > 1) return "top_p must be in (0, 1] (1 turns it off)";
        p.top_p = float(x);
    } else if (key == "top_k") {
        if (x < 0 || x != std::floor(x)) return "top_k must be a whole number >= 0 (0 turns it off)";
        p.top_k = int32_t(x);
    } else if (key == "min_p") {
        if (x < 0 || x >= 1) return "min_p must be in [0, 1) (0 turns it off)";
        p.min_p = float(x);
    } else if (key == "repeat_penalty") {
        if (x < 1 || x > 3) return "repeat_penalty must be between 1 (off) and 3";
        p.repeat_penalty = float(x);
    } else if (key == "seed") {
        if (x < 0 || x != std::floor(x) || x > 9.007e15) return "seed must be a whole number >= 0";
        p.seed = uint64_t(x);
    } else {
        return "unknown setting '" + std::string(key) + "' (temp, top_p, top_k, min_p, repeat_penalty, seed)";
    }
    return {};
}

std::string describe(const SamplerParams& p) {
    char b[200];
    std::snprintf(b, sizeof b, "temp %g · top_p %g · top_k %d · min_p %g · repeat_penalty %g · seed %llu",
                  double(p.temperature), double(p.top_p), p.top_k, double(p.min_p), double(p.repeat_penalty),
                  (unsigned long long)p.seed);
    return b;
}

std::optional<int64_t> parse_id(std::string_view s, std::string& why) {
    s = trim(s);
    if (!s.empty() && s[0] == '#') s.remove_prefix(1);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v <= 0) {
        why = "expected a conversation number from /list, got '" + std::string(s) + "'";
        return std::nullopt;
    }
    return v;
}

const char* const kHelpText =
    "/new              a new conversation      /list       saved conversations\n"
    "/open N           continue conversation N /delete N   delete conversation N\n"
    "/rename TITLE     rename this one         /regen      regenerate the last reply\n"
    "/edit             edit your last message, Enter regenerates\n"
    "/system [TEXT|-]  show, set or (-) remove the system prompt\n"
    "/set [KEY VALUE]  temp, top_p, top_k, min_p, repeat_penalty, seed\n"
    "/experts K        experts per token       /stats      figures of each reply\n"
    "/export [md|json] [PATH]                  /think on|off  show or fold reasoning\n"
    "/quit             leave (also Ctrl-D, or Ctrl-C twice)\n"
    "Esc/Ctrl-C stop a reply · PgUp/PgDn, wheel scroll · Ctrl-R history search\n"
    "Alt-Enter new line · F2 conversation list (wide terminals)";

}  // namespace sluice::ui
