// Minimal flag parsing for the verbs: "--name value", "-x value", "--flag", positionals. Unknown flags
// and malformed numbers are errors that name the flag.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/model.h"

namespace sluice {

class Args {
public:
    // value_flags take a value; bool_flags don't. Aliases map e.g. "-p" to "--prompt".
    Args(int argc, char** argv, const std::set<std::string>& value_flags,
         const std::set<std::string>& bool_flags = {}, const std::map<std::string, std::string>& aliases = {});

    const std::vector<std::string>& positional() const { return pos_; }
    bool has(const std::string& flag) const { return vals_.count(flag) != 0; }
    std::string str(const std::string& flag, const std::string& def = "") const;
    std::string required(const std::string& flag) const;
    int64_t i64(const std::string& flag, int64_t def) const;
    double f64(const std::string& flag, double def) const;
    // Sizes like 4G, 512M, 1024 (bytes).
    uint64_t size(const std::string& flag, uint64_t def) const;

private:
    std::map<std::string, std::string> vals_;
    std::vector<std::string> pos_;
};

// The GPU flags of every verb that loads a model: --gpu auto|none|INDEX (default auto),
// --gpu-expert-cache SIZE, --gpu-experts auto|gpu|cpu|split.
std::set<std::string> with_gpu_flags(std::set<std::string> value_flags);
void apply_gpu_flags(const Args& a, ModelOptions& opt);
#define SLUICE_GPU_USAGE "[--gpu auto|none|INDEX] [--gpu-expert-cache SIZE] [--gpu-experts auto|gpu|cpu|split] [--gpu-memory SIZE]"

// Reads a whole file into a string; Error naming the path on failure.
std::string read_text_file(const std::string& path);

}  // namespace sluice
