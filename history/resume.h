// Resuming a conversation without re-processing it: the engine side of prefill snapshots.
//
//   const ModelIdentity ident = model_identity(*model, opt);        // once per loaded model
//   ResumeResult r = resume(*model, store, conv, ids, ident);       // ids: the whole prompt
//   if (!r.notice.empty()) show(r.notice);
//   logits = model->forward_tokens(std::span(ids).subspan(r.restored), false);
//   ... generate the reply, feeding each token ...
//   save_snapshot(*model, store, conv, fed, ident);                 // fed: every token in the model
//
// A snapshot covers the token ids it was made from. resume() restores the one sharing the longest
// prefix with `ids` and truncates it to that prefix (chat templates re-render earlier turns, e.g.
// Qwen3 drops old thinking, so the new prompt may leave the old token stream part-way).
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "engine/model.h"
#include "history/store.h"

namespace sluice::history {

// "gguf1-<file size>-<xxh64 hex>": the hash covers the header (metadata and tensor table, everything
// before data_offset()) and 16 evenly spaced 4 KiB windows of tensor data, so two files of the same
// shapes with other weights differ too. Reads a few MB at most, never the whole file.
std::string model_fingerprint(const gguf::File& f);

struct ModelIdentity {
    std::string fingerprint;
    // What else decides the cached values: "arch=qwen3moe experts=8 kv=f32 state=1". The context
    // length is not in it (positions [0, n) do not depend on it); a snapshot longer than the context
    // is refused by load_state and reported.
    std::string settings;
};
ModelIdentity model_identity(const Model& m, const ModelOptions& opt);

struct ResumeResult {
    int64_t restored = 0;    // tokens whose state came from a snapshot; model.n_past() == restored
    int64_t to_process = 0;  // ids.size() - restored (at least 1: logits are not stored)
    std::string notice;      // for the user when a snapshot existed but could not be used; else empty
};

// Resets the model and restores what a snapshot of this conversation can give. Mismatches (another
// model or settings, a damaged blob, a state this model refuses) fall back to re-processing with a
// notice; a damaged snapshot is deleted.
ResumeResult resume(Model& m, Store& store, int64_t conversation_id, std::span<const int32_t> ids, const ModelIdentity& ident);

// Saves the model's state; `ids` must be exactly the m.n_past() tokens it holds. Returns the snapshot
// id, or 0 when the state is larger than the whole budget. It costs a copy of the state, zstd and a
// write (0.84 s for a 40 MB state on the 2-core dev box): run it after the reply is shown, not
// before. A full disk is a SqlError (disk_full()) and leaves the messages intact.
int64_t save_snapshot(const Model& m, Store& store, int64_t conversation_id, std::span<const int32_t> ids, const ModelIdentity& ident);

}  // namespace sluice::history
