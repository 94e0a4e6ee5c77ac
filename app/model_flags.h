// The model-loading flags shared by the verbs that load a model (run, bench, chat): threads, context,
// experts per token, memory / expert streaming, GPU placement.
#pragma once
#include <set>
#include <string>

#include "app/args.h"
#include "engine/model.h"

namespace sluice {

// Value flags: -t -c --batch --experts-per-token --io --memory --expert-cache --cache-policy --io-engine --io-depth
// --gpu --gpu-expert-cache --gpu-experts
extern const std::set<std::string> kModelFlags;
extern const std::set<std::string> kModelBoolFlags;  // --no-prefetch
extern const char* const kModelFlagsHelp;  // one line for usage messages

// Error naming the flag for an unknown --io mode, policy or engine, or a size that does not parse.
ModelOptions model_options(const Args& a);

}  // namespace sluice
