// Markdown (CommonMark + GitHub tables, strikethrough, task lists; parsed by md4c) -> styled lines at
// a width: headings, bold/italic, inline code, fenced code blocks on their own background, lists
// with hanging indents, block quotes, rules, tables with aligned columns. Raw HTML stays text.
#pragma once
#include <string_view>
#include <vector>

#include "ui/text.h"

namespace sluice::ui {

std::vector<Line> render_markdown(std::string_view md, int width);

// Streaming: the length of the prefix of `text` made of complete blocks (it ends after a blank line
// outside a code fence, or after a closing fence). That prefix is rendered; the rest is shown raw.
size_t complete_prefix(std::string_view text);

}  // namespace sluice::ui
