// Placeholder verbs until the tokenizer lands (removed as each verb is implemented).
#include "app/verbs.h"
#include "engine/error.h"

namespace sluice {

int verb_run(int, char**) { throw Error("not implemented yet"); }
int verb_tokenize(int, char**) { throw Error("not implemented yet"); }

}  // namespace sluice
