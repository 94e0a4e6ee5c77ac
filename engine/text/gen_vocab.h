// A plain byte-level vocabulary for generated models given no tokenizer.json: 256 byte tokens, 26 merges (" a".." z"), the
// ChatML specials and unused padding up to n_vocab, with a ChatML template.
#pragma once
#include <cstdint>

#include "engine/text/vocab.h"

namespace sluice::text {

Vocab byte_vocab(int64_t n_vocab);

}  // namespace sluice::text
