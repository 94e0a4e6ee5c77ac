// Errors from bad input (files, command lines, user text): a message a person can act on.
#pragma once
#include <stdexcept>
#include <string>

namespace sluice {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace sluice
