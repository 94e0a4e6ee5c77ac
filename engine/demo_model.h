// The demo model that ships with sluice (models/demo.gguf: a 20M-parameter qwen3moe trained by
// tools/demo/ on free dictionaries), so a fresh install can chat without downloading anything.
#pragma once
#include <string>
#include <vector>

namespace sluice {

// Where the demo model is looked for: $SLUICE_DEMO_MODEL alone when set; else next to the executable
// (<exe>/../share/sluice/demo.gguf as installed, <exe>/../models/demo.gguf from a build directory in
// the source tree); the source tree this binary was built from.
std::vector<std::string> demo_model_candidates();

// The first candidate that exists; Error naming every place looked in when none does.
std::string demo_model_path();

// A verb's MODEL argument: "demo" (unless a file of that name exists) means the demo model.
std::string resolve_model_path(const std::string& arg);

}  // namespace sluice
