// The history database's schema: a list of forward migrations. PRAGMA user_version holds the number
// of the last one applied; opening a database applies the ones after it, each in its own transaction,
// so a crash mid-migration leaves the previous version intact. Never edit a released step: add one.
#pragma once
#include <span>

namespace sluice::history {

class Db;

struct Migration {
    int version;       // user_version after this step: 1, 2, 3, ...
    const char* what;  // one line for people
    const char* sql;
};

std::span<const Migration> migrations();
int latest_schema_version();

// Brings `db` from its user_version to the latest. A version newer than this program knows is an
// Error (the file is left alone).
void migrate(Db& db);

}  // namespace sluice::history
