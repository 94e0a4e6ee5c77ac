// Snapshot storage: XXH64 against the reference library's values, bit-exact round trips through
// compression and chunking, superseding, LRU eviction within the budget, damaged blobs refused.
#include <gtest/gtest.h>

#include <random>

#include "history/hash.h"
#include "history/sqlite.h"
#include "history/store.h"
#include "history_test_util.h"

namespace sluice::history {
namespace {

// Reference values from libxxhash 0.8.1 (XXH64).
TEST(Hash, Xxh64MatchesTheReference) {
    std::string hundred;
    for (int i = 0; i < 100; ++i) hundred += char(i);
    EXPECT_EQ(xxh64("", 0), 0xef46db3751d8e999ull);
    EXPECT_EQ(xxh64("a", 1), 0xd24ec4f1a98c6e5bull);
    EXPECT_EQ(xxh64("abc", 3), 0x44bc2cf5ad770999ull);
    EXPECT_EQ(xxh64(hundred.data(), 100), 0x6ac1e58032166597ull);
    EXPECT_EQ(xxh64(hundred.data(), 100, 7), 0x80653e7e9b887cddull);
    EXPECT_EQ(xxh64(std::string(37, 'x').data(), 37), 0x1e580c475bdc5381ull);
    // Fed in pieces of every size: the same digest.
    for (size_t piece = 1; piece <= 40; ++piece) {
        Xxh64 h;
        for (size_t i = 0; i < 100; i += piece) h.update(hundred.data() + i, std::min(piece, 100 - i));
        EXPECT_EQ(h.digest(), 0x6ac1e58032166597ull) << piece;
    }
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = uint8_t(rng());
    return v;
}

// Like a KV cache: floats of similar magnitude (compressible a little).
std::vector<uint8_t> float_bytes(size_t n_floats, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> f(n_floats);
    for (auto& x : f) x = d(rng);
    const auto* p = reinterpret_cast<const uint8_t*>(f.data());
    return {p, p + f.size() * 4};
}

std::vector<int32_t> iota_tokens(int n, int start = 1) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) t[size_t(i)] = start + i;
    return t;
}

class SnapshotTest : public ::testing::TestWithParam<bool> {
protected:
    std::string path() { return GetParam() ? test::tmp_db(::testing::UnitTest::GetInstance()->current_test_info()->name()) : ":memory:"; }
};

TEST_P(SnapshotTest, RoundTripIsBitExact) {
    Store::Options o;
    o.chunk_bytes = 4096;  // several rows per state
    Store s(path(), o);
    const int64_t c = s.create_conversation({});
    const std::vector<std::vector<uint8_t>> states = {
        random_bytes(50000, 1), float_bytes(20000, 2), std::vector<uint8_t>(100000, 0), {}, random_bytes(1, 3), random_bytes(4096, 4)};
    int i = 0;
    for (const auto& st : states) {
        SCOPED_TRACE(st.size());
        ++i;
        const auto toks = iota_tokens(10 + i, 1000 * i);  // no prefix relation: none supersedes another
        const int64_t id = s.put_snapshot(c, "fp", "set", toks, st);
        ASSERT_GT(id, 0);
        EXPECT_EQ(s.load_snapshot(id), st);
        const auto info = s.snapshots(c).front();
        EXPECT_EQ(info.id, id) << "just used: first";
        EXPECT_EQ(info.tokens, toks);
        EXPECT_EQ(info.state_bytes, st.size());
        EXPECT_EQ(info.model_fingerprint, "fp");
        EXPECT_EQ(info.settings, "set");
        const int64_t rows = s.db().scalar_i64("SELECT count(*) FROM snapshot_chunks WHERE snapshot_id = " + std::to_string(id));
        const uint64_t compressed = info.stored_bytes - toks.size() * 4;
        EXPECT_EQ(uint64_t(rows), std::max<uint64_t>(1, (compressed + 4095) / 4096)) << "rows of chunk_bytes";
    }
    EXPECT_EQ(s.snapshots(c).size(), states.size());
    const auto zeros = s.snapshots(c);
    for (const auto& info : zeros) {
        if (info.state_bytes == 100000) {
            EXPECT_LT(info.stored_bytes, 1000u) << "compressed";
        }
    }
}

TEST_P(SnapshotTest, LongerStateSupersedesItsPrefixes) {
    Store s(path());
    const int64_t c = s.create_conversation({});
    const auto st = random_bytes(1000, 5);
    s.put_snapshot(c, "fp", "set", iota_tokens(5), st);
    s.put_snapshot(c, "fp", "set", iota_tokens(8), st);  // turn 2: replaces turn 1
    ASSERT_EQ(s.snapshots(c).size(), 1u);
    EXPECT_EQ(s.snapshots(c)[0].tokens.size(), 8u);
    auto branch = iota_tokens(6);
    branch.push_back(99);  // an edited turn: another branch, both kept
    s.put_snapshot(c, "fp", "set", branch, st);
    EXPECT_EQ(s.snapshots(c).size(), 2u);
    s.put_snapshot(c, "other-model", "set", iota_tokens(8), st);  // other model: kept apart
    s.put_snapshot(c, "fp", "other-settings", iota_tokens(8), st);
    EXPECT_EQ(s.snapshots(c).size(), 4u);
    s.put_snapshot(c, "fp", "set", iota_tokens(8), st);  // the same again: replaced, not duplicated
    EXPECT_EQ(s.snapshots(c).size(), 4u);
    EXPECT_THROW(s.put_snapshot(4242, "fp", "set", iota_tokens(3), st), Error);
}

TEST_P(SnapshotTest, LeastRecentlyUsedIsEvictedWithinBudget) {
    const auto st = random_bytes(10000, 6);  // incompressible: stored ≈ 10 KB + tokens
    Store::Options o;
    o.snapshot_budget = 35000;
    Store s(path(), o);
    std::vector<int64_t> conv, snap;
    for (int i = 0; i < 3; ++i) {
        conv.push_back(s.create_conversation({}));
        s.add_message(conv.back(), {.role = Role::User, .content = "message " + std::to_string(i)});
        snap.push_back(s.put_snapshot(conv.back(), "fp", "set", iota_tokens(10), st));
        ASSERT_GT(snap.back(), 0);
    }
    EXPECT_LE(s.snapshot_bytes(), 35000u);
    s.load_snapshot(snap[0]);  // 0 is now the most recently used; 1 the least
    const int64_t c4 = s.create_conversation({});
    const int64_t s4 = s.put_snapshot(c4, "fp", "set", iota_tokens(10), st);
    ASSERT_GT(s4, 0);
    EXPECT_EQ(s.snapshots(conv[1]).size(), 0u) << "least recently used went";
    EXPECT_EQ(s.snapshots(conv[0]).size(), 1u);
    EXPECT_EQ(s.snapshots(conv[2]).size(), 1u);
    EXPECT_LE(s.snapshot_bytes(), 35000u);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(s.messages(conv[size_t(i)]).size(), 1u) << "messages are never evicted";

    // A state larger than the whole budget is not stored, and evicts nothing.
    EXPECT_EQ(s.put_snapshot(c4, "fp", "set", iota_tokens(20), random_bytes(40000, 7)), 0);
    EXPECT_EQ(s.db().scalar_i64("SELECT count(*) FROM snapshots"), 3);

    // Lowering the budget evicts at once, oldest first.
    s.set_snapshot_budget(25000);
    EXPECT_LE(s.snapshot_bytes(), 25000u);
    EXPECT_EQ(s.snapshots(c4).size(), 1u);
    EXPECT_EQ(s.snapshots(conv[2]).size(), 0u);
    EXPECT_EQ(s.db().scalar_i64("SELECT count(*) FROM snapshot_chunks c LEFT JOIN snapshots s ON s.id = c.snapshot_id WHERE s.id IS NULL"), 0);
}

INSTANTIATE_TEST_SUITE_P(MemoryAndFile, SnapshotTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "File" : "Memory"; });

TEST(SnapshotFile, BudgetSettingPersists) {
    const std::string p = test::tmp_db("budget");
    { Store(p).set_snapshot_budget(123456789); }
    EXPECT_EQ(Store(p).snapshot_budget(), 123456789u);
    Store::Options o;
    o.snapshot_budget = 1000;  // an explicit option wins for this session
    EXPECT_EQ(Store(p, o).snapshot_budget(), 1000u);
}

// Every kind of damage is an Error naming the snapshot, never a crash or a wrong state.
TEST(SnapshotDamage, IsDetected) {
    Store::Options o;
    o.chunk_bytes = 2048;
    const auto st = float_bytes(4000, 8);
    const auto toks = iota_tokens(7);
    struct Case {
        const char* name;
        const char* sql;  // ?1 = snapshot id
    };
    const Case cases[] = {
        {"flipped byte", "UPDATE snapshot_chunks SET data = substr(data, 1, 100) || x'ff' || substr(data, 102) WHERE snapshot_id = ?1 AND seq = 1"},
        {"missing chunk", "DELETE FROM snapshot_chunks WHERE snapshot_id = ?1 AND seq = 1"},
        {"last chunk missing", "DELETE FROM snapshot_chunks WHERE snapshot_id = ?1 AND seq = (SELECT max(seq) FROM snapshot_chunks WHERE snapshot_id = ?1)"},
        {"truncated chunk", "UPDATE snapshot_chunks SET data = substr(data, 1, 10) WHERE snapshot_id = ?1 AND seq = 0"},
        {"extra chunk", "INSERT INTO snapshot_chunks SELECT snapshot_id, seq + 1000, data FROM snapshot_chunks WHERE snapshot_id = ?1 AND seq = 0"},
        {"no chunks", "DELETE FROM snapshot_chunks WHERE snapshot_id = ?1"},
        {"wrong size", "UPDATE snapshots SET state_bytes = state_bytes - 4 WHERE id = ?1"},
        {"larger size", "UPDATE snapshots SET state_bytes = state_bytes + 4 WHERE id = ?1"},
        {"token ids", "UPDATE snapshots SET tokens = x'0100000002000000' WHERE id = ?1"},
        {"not zstd", "UPDATE snapshot_chunks SET data = zeroblob(length(data)) WHERE snapshot_id = ?1"},
    };
    for (const Case& c : cases) {
        Store s(":memory:", o);
        const int64_t conv = s.create_conversation({});
        const int64_t id = s.put_snapshot(conv, "fp", "set", toks, st);
        ASSERT_GT(s.db().scalar_i64("SELECT count(*) FROM snapshot_chunks"), 2) << "the cases need 3+ chunks";
        Stmt q(s.db(), c.sql);
        q.bind(1, id).run();
        try {
            const auto got = s.load_snapshot(id);
            ADD_FAILURE() << c.name << ": accepted (" << got.size() << " bytes, equal: " << (got == st) << ")";
        } catch (const SqlError& e) {
            ADD_FAILURE() << c.name << ": SQL error " << e.what();
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("snapshot " + std::to_string(id)), std::string::npos) << e.what();
        }
    }
}

}  // namespace
}  // namespace sluice::history
