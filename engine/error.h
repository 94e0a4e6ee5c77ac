// Errors from bad input (files, command lines, user text): a message a person can act on.
#pragma once
#include <stdexcept>
#include <string>

namespace sluice {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Prompt processing stopped on request (Model::set_prompt_hooks): the model keeps every token it
// finished (n_past() says how many), nothing else changed.
struct Interrupted : Error {
    Interrupted() : Error("prompt processing stopped") {}
};

}  // namespace sluice
