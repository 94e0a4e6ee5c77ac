// What load_model() decided about memory and I/O, shared by the Model, its expert source(s) and the
// statistics. Internal to the engine: architectures only pass ModelOptions along.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/gguf/gguf.h"
#include "engine/stream/io.h"

namespace sluice {

class Model;
struct ModelOptions;
class StatsRecorder;
class StreamingExperts;

// What is resident after loading, measured where it can be.
struct MemoryReport {
    IoMode mode = IoMode::Mmap;
    std::string engine, policy;     // streaming: "io_uring"/"pread pool", "lru"/"lfu"
    uint64_t file_bytes = 0;
    uint64_t dense_bytes = 0;       // weights read into RAM at load (streaming modes)
    uint64_t expert_cache_bytes = 0;
    int64_t cache_slots = 0;
    uint64_t slot_bytes = 0;        // one expert's slabs, page-rounded
    uint64_t other_bytes = 0;       // RSS at load minus the two above: KV cache, buffers, code
    uint64_t rss_bytes = 0;         // measured after load
    uint64_t budget = 0;            // --memory, 0: none
    std::string note;               // why Auto chose the mode, etc.
};
// Several lines for the terminal: "resident: dense weights 0.98 GiB, expert cache ..., RSS ...".
std::string describe(const MemoryReport& m);

struct StreamContext {
    IoMode mode = IoMode::Mmap;
    std::shared_ptr<StatsRecorder> rec;
    std::vector<StreamingExperts*> sources;  // registered by make_expert_source
    MemoryReport mem;
};

// load_model()'s two steps around the architecture's loader.
// Before: picks the mode (Auto resolved), refuses a budget the dense weights alone exceed, opens the
// file (mapped, or unmapped with the dense weights read into RAM) and sets opt.stream.
std::unique_ptr<gguf::File> open_model_file(const std::string& path, ModelOptions& opt);
// After: sizes the expert cache from what is left of the budget (RSS measured now, with the KV cache
// allocated), refuses if not even one layer's K experts fit, and fills the report.
void finish_load(Model& m, const ModelOptions& opt);

}  // namespace sluice
