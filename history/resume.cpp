#include "history/resume.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "engine/error.h"

#include "engine/state.h"
#include "history/hash.h"
#include "history/sqlite.h"

namespace sluice::history {

std::string model_fingerprint(const gguf::File& f) {
    Xxh64 h;
    const uint64_t size = f.file_size(), header = std::min(f.data_offset(), size);
    // A streaming model maps nothing (only resident tensors are reachable through data()), so the
    // windows are read from the file itself, with a plain fd of our own (the model's may be O_DIRECT).
    // The same bytes either way: the fingerprint does not depend on --io.
    const int fd = f.mapped() ? -1 : ::open(f.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (!f.mapped() && fd < 0) throw Error(f.path() + ": cannot open to fingerprint: " + std::strerror(errno));
    std::vector<uint8_t> buf;
    auto update = [&](uint64_t off, uint64_t n) {
        if (f.mapped()) return h.update(f.mapping() + off, n);
        buf.resize(n);
        uint64_t got = 0;
        while (got < n) {
            const ssize_t r = ::pread(fd, buf.data() + got, n - got, off_t(off + got));
            if (r <= 0) {
                ::close(fd);
                throw Error(f.path() + ": read failed while fingerprinting");
            }
            got += uint64_t(r);
        }
        h.update(buf.data(), n);
    };
    update(0, header);
    // Weights: fixed windows spread over the data, the last one ending at the end of the file.
    constexpr uint64_t kWindows = 16, kWindow = 4096;
    const uint64_t data = size - header;
    if (data <= kWindows * kWindow) {
        update(header, data);
    } else {
        for (uint64_t i = 0; i < kWindows; ++i) {
            const uint64_t off = header + (data - kWindow) * i / (kWindows - 1);
            update(off, kWindow);
        }
    }
    if (fd >= 0) ::close(fd);
    char out[64];
    std::snprintf(out, sizeof out, "gguf1-%" PRIu64 "-%016" PRIx64, size, h.digest());
    return out;
}

ModelIdentity model_identity(const Model& m, const ModelOptions& opt) {
    const Hparams& hp = m.hparams();
    ModelIdentity id;
    id.fingerprint = model_fingerprint(m.file());
    id.settings = "arch=" + hp.arch;
    if (hp.n_expert > 0)
        id.settings += " experts=" + std::to_string(opt.experts_per_token > 0 ? opt.experts_per_token : hp.n_expert_used);
    id.settings += " kv=f32 state=" + std::to_string(StateWriter::kVersion);
    return id;
}

namespace {

int64_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
    const size_t n = std::min(a.size(), b.size());
    size_t i = 0;
    while (i < n && a[i] == b[i]) ++i;
    return int64_t(i);
}

}  // namespace

ResumeResult resume(Model& m, Store& store, int64_t conv, std::span<const int32_t> ids, const ModelIdentity& ident) {
    m.reset();
    ResumeResult r;
    r.to_process = int64_t(ids.size());
    // The last token is always processed again: its logits start the reply.
    const int64_t cap = std::max<int64_t>(int64_t(ids.size()) - 1, 0);

    struct Candidate { int64_t id, usable; };
    std::vector<Candidate> ok;
    int64_t best_other = 0;  // what a snapshot we cannot use would have given
    std::string why;
    for (const SnapshotInfo& s : store.snapshots(conv)) {
        const int64_t usable = std::min(common_prefix(s.tokens, ids), cap);
        if (usable == 0) continue;
        std::string reason;
        if (s.model_fingerprint != ident.fingerprint)
            reason = "it was made with another model (" + s.model_fingerprint + ", now " + ident.fingerprint + ")";
        else if (s.settings != ident.settings)
            reason = "it was made with other settings (" + s.settings + "; now " + ident.settings + ")";
        else if (int64_t(s.tokens.size()) > m.n_ctx())
            reason = "it holds " + std::to_string(s.tokens.size()) + " tokens, more than the context of " + std::to_string(m.n_ctx());
        if (reason.empty()) {
            ok.push_back({s.id, usable});
        } else if (usable > best_other) {
            best_other = usable;
            why = "snapshot " + std::to_string(s.id) + " was not used: " + reason;
        }
    }
    std::stable_sort(ok.begin(), ok.end(), [](const Candidate& a, const Candidate& b) { return a.usable > b.usable; });
    for (const Candidate& c : ok) {
        try {
            m.load_state(store.load_snapshot(c.id));
            m.truncate(c.usable);
            r.restored = c.usable;
            break;
        } catch (const SqlError& e) {  // the database failed, not the snapshot: keep it
            m.reset();
            if (c.usable > best_other) {
                best_other = c.usable;
                why = "snapshot " + std::to_string(c.id) + " could not be read: " + e.what();
            }
        } catch (const Error& e) {
            m.reset();
            store.delete_snapshot(c.id);
            if (c.usable > best_other) {
                best_other = c.usable;
                why = "snapshot " + std::to_string(c.id) + " could not be restored and was deleted: " + e.what();
            }
        }
    }
    r.to_process = int64_t(ids.size()) - r.restored;
    if (best_other > r.restored)
        r.notice = why + "; re-processing " + std::to_string(r.to_process) + " tokens";
    return r;
}

int64_t save_snapshot(const Model& m, Store& store, int64_t conv, std::span<const int32_t> ids, const ModelIdentity& ident) {
    if (int64_t(ids.size()) != m.n_past())
        throw Error("save_snapshot: " + std::to_string(ids.size()) + " token ids given, the model holds " + std::to_string(m.n_past()));
    if (ids.empty()) return 0;
    return store.put_snapshot(conv, ident.fingerprint, ident.settings, ids, m.save_state());
}

}  // namespace sluice::history
