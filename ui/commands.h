// Slash commands: parsing, and the checks that turn a bad value into a one-line explanation.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "engine/sampler.h"

namespace sluice::ui {

struct Command {
    std::string name;  // without the slash, lower case
    std::string rest;  // everything after the name, trimmed
};
// nullopt when the line is not a command (does not start with '/').
std::optional<Command> parse_command(std::string_view line);

// "/set KEY VALUE": applies to p, or returns why not (p unchanged).
std::string apply_set(SamplerParams& p, std::string_view key, std::string_view value);
std::string describe(const SamplerParams& p);  // "temp 0.8 · top_p 0.95 · ..."

// "/open 3": the number, or nullopt with the explanation in why.
std::optional<int64_t> parse_id(std::string_view s, std::string& why);

extern const char* const kHelpText;

}  // namespace sluice::ui
