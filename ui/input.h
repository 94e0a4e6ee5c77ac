// The input line: GNU readline through its callback interface, fed the keys the UI reads and drawn
// by the UI (readline never touches the terminal). Line editing, history kept across sessions in a
// file, Ctrl-R search, and text inserted whole (bracketed paste, Alt-Enter for a newline).
// Readline is process-global: one LineInput at a time.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "ui/text.h"

namespace sluice::ui {

class LineInput {
public:
    explicit LineInput(std::string history_path);  // "" : no history file
    ~LineInput();                                  // appends this session's lines to the file
    LineInput(const LineInput&) = delete;
    LineInput& operator=(const LineInput&) = delete;

    void feed(std::string_view bytes);      // key bytes, as a terminal would send them
    void insert(std::string_view text);     // literal text at the cursor (a paste)
    std::optional<std::string> take_line(); // a line accepted with Enter
    bool eof();                             // Ctrl-D on an empty line

    void set_text(std::string_view text);   // replaces the line (the cursor goes to its end)
    void clear() { set_text(""); }
    std::string text() const;
    std::string prompt() const;             // "❯ " or readline's search prompt
    size_t point() const;                   // the cursor, a byte offset into text()
    bool searching() const;

private:
    std::string history_path_;
};

struct InputView {
    std::vector<Line> lines;
    int cursor_row = 0, cursor_col = 0;
};
// The prompt and text wrapped to width (newlines in the text break lines), with the cursor's cell.
InputView input_view(const std::string& prompt, const std::string& text, size_t point, int width);

}  // namespace sluice::ui
