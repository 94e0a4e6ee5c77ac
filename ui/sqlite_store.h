// The chat's conversations in the history database (history/store.h): a ConversationStore over one
// connection for the UI thread, and a SnapshotStore over a second connection on the same file for the
// engine thread (a history::Store is not thread-safe; WAL lets the two work side by side). Snapshots
// are keyed by the model's fingerprint and settings (history/resume.h), so one is never applied to
// another model; resuming falls back to processing the conversation, with a notice, when a snapshot
// cannot be used.
//
//   auto store = make_sqlite_store(history::Store::default_path());
//   session_options.snapshots = store->snapshot_store();
#pragma once
#include <memory>
#include <string>

#include "ui/conversation_store.h"

namespace sluice::ui {

// Opens or creates the database (history::Store's errors: a foreign or corrupt file is left alone).
// `path` must be a file: ":memory:" would give the engine's connection a database of its own.
std::unique_ptr<ConversationStore> make_sqlite_store(const std::string& path);

}  // namespace sluice::ui
