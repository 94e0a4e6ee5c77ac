#include "ui/input.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
// readline.h needs stdio first.
#include <readline/history.h>
#include <readline/readline.h>

namespace sluice::ui {

namespace {

// Readline pulls bytes through rl_getc_function; the UI pushes them here first.
std::deque<unsigned char> g_in;
std::deque<std::string> g_lines;
bool g_eof = false;
int g_added = 0;
FILE* g_null = nullptr;
const char* kPrompt = "❯ ";

int getc_from_queue(FILE*) {
    if (g_in.empty()) return EOF;
    const int c = g_in.front();
    g_in.pop_front();
    return c;
}
int input_available() { return !g_in.empty(); }
void no_redisplay() {}  // the UI draws the line itself
void no_term(int) {}
void no_deprep() {}

void on_line(char* line) {
    if (!line) {
        g_eof = true;
        return;
    }
    // History is added here, inside the handler, as readline expects: added later, the entry would
    // be reverted to the (empty) line readline saved for it.
    if (*line && std::string_view(line).find_first_not_of(" \n") != std::string_view::npos) {
        add_history(line);
        ++g_added;
    }
    g_lines.emplace_back(line);
    std::free(line);
}

int insert_newline(int, int) { return rl_insert_text("\n") >= 0 ? 0 : 1; }

}  // namespace

LineInput::LineInput(std::string history_path) : history_path_(std::move(history_path)) {
    g_null = std::fopen("/dev/null", "w");
    rl_readline_name = "sluice";
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_change_environment = 0;
    rl_prep_term_function = no_term;
    rl_deprep_term_function = no_deprep;
    rl_getc_function = getc_from_queue;
    rl_input_available_hook = input_available;
    rl_redisplay_function = no_redisplay;
    rl_outstream = g_null;  // bells and completion listings go nowhere
    rl_instream = stdin;
    rl_variable_bind("enable-bracketed-paste", "off");  // the UI handles paste
    rl_variable_bind("bell-style", "none");
    rl_callback_handler_install(kPrompt, on_line);
    rl_bind_key('\t', rl_insert);          // no filename completion: a tab is text
    rl_bind_keyseq("\\e\\r", insert_newline);  // Alt-Enter: a newline in the message
    rl_bind_keyseq("\\e\\n", insert_newline);
    stifle_history(2000);
    // A multi-line message stays one entry: each is written after a "#time" line, and reading
    // joins the lines up to the next one.
    history_comment_char = '#';
    history_write_timestamps = 1;
    history_multiline_entries = 1;
    if (!history_path_.empty()) read_history(history_path_.c_str());
    using_history();  // after reading: the position goes past the last entry
}

LineInput::~LineInput() {
    rl_callback_handler_remove();
    if (!history_path_.empty() && g_added > 0) {
        if (append_history(g_added, history_path_.c_str()) != 0) write_history(history_path_.c_str());
        history_truncate_file(history_path_.c_str(), 2000);
    }
    clear_history();
    if (g_null) std::fclose(g_null);
    g_null = nullptr;
    g_in.clear();
    g_lines.clear();
    g_eof = false;
    g_added = 0;
}

void LineInput::feed(std::string_view bytes) {
    for (char c : bytes) g_in.push_back(static_cast<unsigned char>(c));
    while (!g_in.empty()) rl_callback_read_char();
}

void LineInput::insert(std::string_view text) {
    rl_insert_text(std::string(text).c_str());
}

std::optional<std::string> LineInput::take_line() {
    if (g_lines.empty()) return std::nullopt;
    std::string l = std::move(g_lines.front());
    g_lines.pop_front();
    return l;
}

bool LineInput::eof() {
    const bool e = g_eof;
    g_eof = false;
    return e;
}

void LineInput::set_text(std::string_view text) {
    rl_replace_line(std::string(text).c_str(), 1);
    rl_point = rl_end;
}

std::string LineInput::text() const { return rl_line_buffer ? std::string(rl_line_buffer, size_t(rl_end)) : ""; }
std::string LineInput::prompt() const { return rl_display_prompt ? rl_display_prompt : kPrompt; }
size_t LineInput::point() const { return size_t(rl_point); }
bool LineInput::searching() const { return (RL_ISSTATE(RL_STATE_ISEARCH)) != 0; }

InputView input_view(const std::string& prompt, const std::string& text, size_t point, int width) {
    InputView v;
    width = std::max(2, width);
    Line cur;
    int col = 0;
    auto newline = [&] {
        v.lines.push_back(std::move(cur));
        cur = Line{};
        col = 0;
    };
    auto put = [&](const std::string& g, int w, uint16_t style) {
        if (col + w > width) newline();
        if (!cur.spans.empty() && cur.spans.back().style == style)
            cur.spans.back().text += g;
        else
            cur.spans.push_back({g, style});
        col += w;
    };
    const std::string p = sanitize(prompt);
    for (size_t i = 0; i < p.size();) {
        const size_t s = i;
        const uint32_t cp = next_cp(p, i);
        put(p.substr(s, i - s), cp_width(cp), uint16_t(Accent | Bold));
    }
    bool placed = false;
    for (size_t i = 0; i <= text.size();) {
        if (i >= point && !placed) {
            if (col >= width) newline();
            v.cursor_row = int(v.lines.size());
            v.cursor_col = col;
            placed = true;
        }
        if (i == text.size()) break;
        const size_t s = i;
        const uint32_t cp = next_cp(text, i);
        if (cp == '\n') {
            newline();
            continue;
        }
        const std::string g = sanitize(text.substr(s, i - s));
        put(g, text_width(g), Plain);
    }
    v.lines.push_back(std::move(cur));
    return v;
}

}  // namespace sluice::ui
