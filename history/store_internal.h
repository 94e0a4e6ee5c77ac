// Helpers shared by the store's .cpp files (not part of the API).
#pragma once
#include <cstdint>

namespace sluice::history {

class Db;

int64_t now_ms();                                // Unix time in milliseconds
void require_conversation(Db& db, int64_t id);   // Error naming the id when there is none

}  // namespace sluice::history
