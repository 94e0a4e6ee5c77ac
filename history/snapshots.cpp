// Prefill snapshots: the engine state as one zstd frame (content checksum on) cut into rows of
// snapshot_chunks, streamed in and out so a state is never held twice in memory.
#include <zstd.h>

#include <cstring>
#include <memory>

#include "history/hash.h"
#include "history/sqlite.h"
#include "history/store.h"
#include "history/store_internal.h"

namespace sluice::history {

namespace {

struct CctxFree { void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); } };
struct DctxFree { void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); } };

void zcheck(size_t rc, const char* what) {
    if (ZSTD_isError(rc)) throw Error(std::string("zstd ") + what + ": " + ZSTD_getErrorName(rc));
}

std::span<const uint8_t> token_bytes(std::span<const int32_t> t) {
    return {reinterpret_cast<const uint8_t*>(t.data()), t.size() * sizeof(int32_t)};
}

std::vector<int32_t> tokens_from_blob(std::span<const uint8_t> b) {
    std::vector<int32_t> t(b.size() / sizeof(int32_t));
    if (!t.empty()) std::memcpy(t.data(), b.data(), t.size() * sizeof(int32_t));
    return t;
}

bool is_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
    return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// Snapshots are a cache: losing the latest one to a power cut costs a re-processing, not data, so
// their writes skip the fsync that message commits pay (a crash of the process still loses nothing
// in WAL mode). Messages stay synchronous=FULL.
class RelaxedSync {
public:
    explicit RelaxedSync(Db& db) : db_(db) { db_.exec("PRAGMA synchronous = NORMAL"); }
    ~RelaxedSync() {
        try {
            db_.exec("PRAGMA synchronous = FULL");
        } catch (...) {  // only fails on a broken connection, which the next call reports
        }
    }

private:
    Db& db_;
};

// Strictly increasing, so two uses within one millisecond still order.
void mark_used(Db& db, int64_t id) {
    RelaxedSync relaxed(db);
    Stmt st(db, "UPDATE snapshots SET last_used_ms = max(?2, (SELECT max(last_used_ms) + 1 FROM snapshots)) WHERE id = ?1");
    st.bind(1, id).bind(2, now_ms());
    st.run();
}

}  // namespace

void Store::evict_to(uint64_t budget, int64_t keep_id) {
    uint64_t total = snapshot_bytes();
    Stmt lru(*db_, "SELECT id, stored_bytes FROM snapshots WHERE id != ?1 ORDER BY last_used_ms, id LIMIT 1");
    Stmt del(*db_, "DELETE FROM snapshots WHERE id = ?1");
    while (total > budget) {
        lru.reset();
        lru.bind(1, keep_id);
        if (!lru.step()) break;
        const int64_t id = lru.i64(0);
        const uint64_t bytes = uint64_t(lru.i64(1));
        lru.reset();
        del.reset();
        del.bind(1, id).run();
        total -= std::min(total, bytes);
    }
}

int64_t Store::put_snapshot(int64_t conv, std::string_view fingerprint, std::string_view settings,
                            std::span<const int32_t> tokens, std::span<const uint8_t> state) {
    try {
        RelaxedSync relaxed(*db_);
        return put_snapshot_txn(conv, fingerprint, settings, tokens, state);
    } catch (const SqlError& e) {
        if (!e.disk_full()) throw;
        throw SqlError(path_ + ": no space to save a snapshot of " + std::to_string(state.size()) +
                           " bytes; it was not saved, the conversation is intact (" + e.what() + ")",
                       e.code(), e.sys_errno(), e.sql());
    }
}

int64_t Store::put_snapshot_txn(int64_t conv, std::string_view fingerprint, std::string_view settings,
                                std::span<const int32_t> tokens, std::span<const uint8_t> state) {
    const std::span<const uint8_t> tok = token_bytes(tokens);
    // Room is made for the uncompressed size, so the file never grows past the budget.
    const uint64_t estimate = uint64_t(state.size()) + tok.size();
    if (estimate > budget_) return 0;

    Txn t(*db_);
    require_conversation(*db_, conv);
    {  // Superseded: this state serves every prefix of `tokens`.
        Stmt sel(*db_, "SELECT id, tokens FROM snapshots WHERE conversation_id = ?1 AND model_fingerprint = ?2 AND settings = ?3");
        sel.bind(1, conv).bind(2, fingerprint).bind(3, settings);
        std::vector<int64_t> old;
        while (sel.step())
            if (is_prefix(tokens_from_blob(sel.blob(1)), tokens)) old.push_back(sel.i64(0));
        Stmt del(*db_, "DELETE FROM snapshots WHERE id = ?1");
        for (int64_t id : old) {
            del.reset();
            del.bind(1, id).run();
        }
    }
    evict_to(budget_ - estimate, 0);

    const int64_t t_now = now_ms();
    Stmt ins(*db_,
             "INSERT INTO snapshots (conversation_id, model_fingerprint, settings, n_tokens, prefix_hash, tokens, state_bytes, "
             "stored_bytes, created_ms, last_used_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?8)");
    ins.bind(1, conv).bind(2, fingerprint).bind(3, settings).bind(4, int64_t(tokens.size()));
    ins.bind(5, int64_t(xxh64(tok.data(), tok.size()))).bind_blob(6, tok).bind(7, int64_t(state.size())).bind(8, t_now);
    ins.run();
    const int64_t id = db_->last_insert_rowid();

    std::unique_ptr<ZSTD_CCtx, CctxFree> cctx(ZSTD_createCCtx());
    if (!cctx) throw Error("zstd: out of memory");
    zcheck(ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, opt_.zstd_level), "level");
    zcheck(ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1), "checksum");
    zcheck(ZSTD_CCtx_setPledgedSrcSize(cctx.get(), state.size()), "size");
    std::vector<uint8_t> buf(std::max<size_t>(opt_.chunk_bytes, 64));
    Stmt chunk(*db_, "INSERT INTO snapshot_chunks (snapshot_id, seq, data) VALUES (?1, ?2, ?3)");
    ZSTD_inBuffer in{state.data(), state.size(), 0};
    ZSTD_outBuffer out{buf.data(), buf.size(), 0};
    uint64_t stored = tok.size();
    for (int64_t seq = 0;;) {
        const size_t left = ZSTD_compressStream2(cctx.get(), &out, &in, ZSTD_e_end);
        zcheck(left, "compress");
        if (out.pos == out.size || (left == 0 && out.pos > 0)) {
            chunk.bind(1, id).bind(2, seq++).bind_blob(3, {buf.data(), out.pos});
            chunk.run();
            chunk.reset();  // unbinds buf before it is refilled
            stored += out.pos;
            out.pos = 0;
        }
        if (left == 0) break;
    }
    Stmt upd(*db_, "UPDATE snapshots SET stored_bytes = ?2 WHERE id = ?1");
    upd.bind(1, id).bind(2, int64_t(stored)).run();
    t.commit();
    return id;
}

std::vector<SnapshotInfo> Store::snapshots(int64_t conv) {
    Stmt st(*db_,
            "SELECT id, conversation_id, model_fingerprint, settings, tokens, state_bytes, stored_bytes, last_used_ms "
            "FROM snapshots WHERE conversation_id = ?1 ORDER BY last_used_ms DESC, id DESC");
    st.bind(1, conv);
    std::vector<SnapshotInfo> out;
    while (st.step()) {
        SnapshotInfo s;
        s.id = st.i64(0);
        s.conversation_id = st.i64(1);
        s.model_fingerprint = st.str(2);
        s.settings = st.str(3);
        s.tokens = tokens_from_blob(st.blob(4));
        s.state_bytes = uint64_t(st.i64(5));
        s.stored_bytes = uint64_t(st.i64(6));
        s.last_used_ms = st.i64(7);
        out.push_back(std::move(s));
    }
    return out;
}

std::vector<uint8_t> Store::load_snapshot(int64_t id) {
    const std::string name = "snapshot " + std::to_string(id);
    Stmt head(*db_, "SELECT n_tokens, prefix_hash, tokens, state_bytes FROM snapshots WHERE id = ?1");
    head.bind(1, id);
    if (!head.step()) throw Error("there is no " + name);
    const std::span<const uint8_t> tok = head.blob(2);
    if (tok.size() != uint64_t(head.i64(0)) * sizeof(int32_t) || xxh64(tok.data(), tok.size()) != uint64_t(head.i64(1)))
        throw Error(name + " is damaged: its token ids do not match their hash");
    const int64_t state_bytes = head.i64(3);
    if (state_bytes < 0) throw Error(name + " is damaged: negative size");
    head.reset();

    std::vector<uint8_t> state(static_cast<size_t>(state_bytes));
    std::unique_ptr<ZSTD_DCtx, DctxFree> dctx(ZSTD_createDCtx());
    if (!dctx) throw Error("zstd: out of memory");
    ZSTD_outBuffer out{state.data(), state.size(), 0};
    size_t left = 1;  // > 0: the frame is not finished
    int64_t expect_seq = 0;
    Stmt st(*db_, "SELECT seq, data FROM snapshot_chunks WHERE snapshot_id = ?1 ORDER BY seq");
    st.bind(1, id);
    while (st.step()) {
        if (st.i64(0) != expect_seq++) throw Error(name + " is damaged: chunk " + std::to_string(expect_seq - 1) + " is missing");
        const std::span<const uint8_t> b = st.blob(1);
        ZSTD_inBuffer in{b.data(), b.size(), 0};
        while (in.pos < in.size) {
            if (left == 0) throw Error(name + " is damaged: data after the end of its zstd frame");
            const size_t before = in.pos;
            if (out.pos < out.size) {
                left = ZSTD_decompressStream(dctx.get(), &out, &in);
                if (ZSTD_isError(left)) throw Error(name + " is damaged (zstd: " + ZSTD_getErrorName(left) + ")");
                continue;
            }
            // All recorded bytes are out; the rest may only be the frame's end (checksum).
            uint8_t probe;
            ZSTD_outBuffer more{&probe, 1, 0};
            left = ZSTD_decompressStream(dctx.get(), &more, &in);
            if (ZSTD_isError(left)) throw Error(name + " is damaged (zstd: " + ZSTD_getErrorName(left) + ")");
            if (more.pos > 0 || (in.pos == before && left != 0))
                throw Error(name + " is damaged: it holds more than the recorded " + std::to_string(state_bytes) + " bytes");
        }
    }
    if (left != 0 || out.pos != out.size)
        throw Error(name + " is damaged: " + std::to_string(out.pos) + " of " + std::to_string(state_bytes) + " bytes, frame " +
                    (left == 0 ? "complete" : "truncated"));
    st.reset();
    mark_used(*db_, id);
    return state;
}

void Store::delete_snapshot(int64_t id) {
    Stmt st(*db_, "DELETE FROM snapshots WHERE id = ?1");
    st.bind(1, id).run();
    db_->exec("PRAGMA incremental_vacuum");
}

uint64_t Store::snapshot_bytes() { return uint64_t(db_->scalar_i64("SELECT COALESCE(SUM(stored_bytes), 0) FROM snapshots")); }

void Store::set_snapshot_budget(uint64_t bytes) {
    if (bytes == 0) throw Error("the snapshot budget must be at least 1 byte (delete snapshots to free everything)");
    Txn t(*db_);
    set_setting("snapshot_budget", std::to_string(bytes));
    budget_ = bytes;
    evict_to(bytes, 0);
    t.commit();
    db_->exec("PRAGMA incremental_vacuum");
}

}  // namespace sluice::history
