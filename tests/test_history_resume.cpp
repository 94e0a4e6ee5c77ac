// Resuming from prefill snapshots with a real (tiny) model: the next token's logits after a restore,
// in this process or a new one, are bit-identical to continuing; every kind of mismatch falls back
// to re-processing with a notice; model fingerprints tell files apart.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <fstream>

#include "engine/model.h"
#include "history/resume.h"
#include "history/sqlite.h"
#include "history/store.h"
#include "history_test_util.h"

namespace sluice::history {
namespace {

const std::string kFx = std::string(SLUICE_FIXTURES) + "/qwen3/";
const std::string kModel = kFx + "moe_a.gguf";

std::vector<int32_t> fixture_ids() {
    std::ifstream in(kFx + "moe_a.tokens.txt");
    std::vector<int32_t> ids;
    for (int32_t x; in >> x;) ids.push_back(x);
    return ids;
}

ModelOptions opts(int64_t experts = 0) {
    ModelOptions o;
    o.n_ctx = 96;
    o.n_threads = 2;
    o.experts_per_token = experts;
    return o;
}

int32_t argmax(const float* l, int64_t n) { return int32_t(std::max_element(l, l + n) - l); }

// A conversation's tokens: the fixture prompt, then `n_gen` greedy tokens fed back.
std::vector<int32_t> generate(Model& m, int n_prompt, int n_gen) {
    std::vector<int32_t> fed = fixture_ids();
    fed.resize(size_t(n_prompt));
    std::vector<float> l = m.forward_tokens(fed, false);
    int32_t t = argmax(l.data(), m.hparams().n_vocab);
    for (int i = 0; i < n_gen; ++i) {
        fed.push_back(t);
        t = argmax(m.forward(t), m.hparams().n_vocab);
    }
    return fed;  // every token in the model: m.n_past() == fed.size()
}

std::vector<float> logits_after(Model& m, std::span<const int32_t> rest) { return m.forward_tokens(rest, false); }

const std::vector<int32_t> kNextTurn = {11, 22, 33, 44, 55};  // "the new user message"

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Fingerprint, TellsFilesApart) {
    auto a = gguf::File::open(kModel);
    auto b = gguf::File::open(kFx + "moe_b.gguf");
    const std::string fa = model_fingerprint(*a);
    EXPECT_EQ(fa, model_fingerprint(*gguf::File::open(kModel))) << "deterministic";
    EXPECT_NE(fa, model_fingerprint(*b));
    EXPECT_EQ(fa.rfind("gguf1-" + std::to_string(a->file_size()) + "-", 0), 0u) << fa;

    // Same header, other weights (one byte at the end of the data, or in the middle of the
    // first tensor's window): another fingerprint. A metadata byte too.
    const std::string bytes = test::slurp(kModel);
    auto variant = [&](size_t at) {
        std::string v = bytes;
        v[at] = char(v[at] ^ 1);
        const std::string p = test::tmp_db("fp-variant") + ".gguf";
        std::ofstream(p, std::ios::binary) << v;
        return model_fingerprint(*gguf::File::open(p));
    };
    EXPECT_NE(variant(bytes.size() - 1), fa);
    EXPECT_NE(variant(size_t(a->data_offset()) + 5), fa);
    EXPECT_NE(variant(34), fa) << "a letter of the first metadata key";
}

TEST(Fingerprint, SettingsNameWhatShapesTheState) {
    auto m = load_model(kModel, opts());
    const ModelIdentity id = model_identity(*m, opts());
    EXPECT_EQ(id.settings, "arch=qwen3moe experts=" + std::to_string(m->hparams().n_expert_used) + " kv=f32 state=1");
    EXPECT_NE(model_identity(*m, opts(1)).settings, id.settings);
}

// generate → save → (same process, fresh model) restore → identical next logits; then every mismatch.
TEST(Resume, RestoresAndFallsBack) {
    auto a = load_model(kModel, opts());
    const ModelIdentity ident = model_identity(*a, opts());
    Store store(":memory:");
    const int64_t conv = store.create_conversation({});
    const std::vector<int32_t> fed = generate(*a, 20, 12);
    ASSERT_GT(save_snapshot(*a, store, conv, fed, ident), 0);
    const std::vector<float> expect = logits_after(*a, kNextTurn);

    std::vector<int32_t> prompt = fed;
    prompt.insert(prompt.end(), kNextTurn.begin(), kNextTurn.end());
    auto b = load_model(kModel, opts());
    ResumeResult r = resume(*b, store, conv, prompt, ident);
    EXPECT_EQ(r.restored, int64_t(fed.size()));
    EXPECT_EQ(r.to_process, int64_t(kNextTurn.size()));
    EXPECT_EQ(r.notice, "");
    EXPECT_EQ(b->n_past(), r.restored);
    EXPECT_TRUE(bit_equal(logits_after(*b, std::span(prompt).subspan(size_t(r.restored))), expect));

    // Nothing new after the snapshot: the last token is processed again for its logits.
    r = resume(*b, store, conv, fed, ident);
    EXPECT_EQ(r.restored, int64_t(fed.size()) - 1);
    EXPECT_EQ(r.to_process, 1);

    // The prompt leaves the old token stream part-way (a re-rendered template): the common prefix.
    std::vector<int32_t> edited = fed;
    edited.resize(15);
    edited.push_back(7);
    edited.push_back(8);
    r = resume(*b, store, conv, edited, ident);
    EXPECT_EQ(r.restored, 15);
    auto fresh = load_model(kModel, opts());
    EXPECT_TRUE(bit_equal(logits_after(*b, std::span(edited).subspan(15)), logits_after(*fresh, edited)));

    // Another model (fingerprint), other settings, a context too small: re-process, with a notice.
    ModelIdentity other = ident;
    other.fingerprint = "gguf1-1-0000000000000000";
    r = resume(*b, store, conv, prompt, other);
    EXPECT_EQ(r.restored, 0);
    EXPECT_EQ(r.to_process, int64_t(prompt.size()));
    EXPECT_EQ(b->n_past(), 0);
    EXPECT_NE(r.notice.find("another model"), std::string::npos) << r.notice;
    EXPECT_NE(r.notice.find("re-processing " + std::to_string(prompt.size()) + " tokens"), std::string::npos) << r.notice;

    auto one_expert = load_model(kModel, opts(1));
    r = resume(*one_expert, store, conv, prompt, model_identity(*one_expert, opts(1)));
    EXPECT_EQ(r.restored, 0);
    EXPECT_NE(r.notice.find("other settings"), std::string::npos) << r.notice;

    ModelOptions small = opts();
    small.n_ctx = 16;
    auto tiny_ctx = load_model(kModel, small);
    r = resume(*tiny_ctx, store, conv, prompt, model_identity(*tiny_ctx, small));
    EXPECT_EQ(r.restored, 0);
    EXPECT_NE(r.notice.find("more than the context"), std::string::npos) << r.notice;

    // No snapshot at all, or one sharing nothing: quietly nothing.
    const int64_t conv2 = store.create_conversation({});
    r = resume(*b, store, conv2, prompt, ident);
    EXPECT_EQ(r.restored, 0);
    EXPECT_EQ(r.notice, "");
    std::vector<int32_t> unrelated = {5, 4, 3};
    r = resume(*b, store, conv, unrelated, ident);
    EXPECT_EQ(r.restored, 0);
    EXPECT_EQ(r.notice, "");
    EXPECT_THROW(save_snapshot(*b, store, conv, unrelated, ident), Error) << "ids must be what the model holds";
}

// A damaged blob: detected, deleted, re-processed (with a notice), and the answer is still right.
TEST(Resume, DamagedSnapshotFallsBackWithNotice) {
    auto a = load_model(kModel, opts());
    const ModelIdentity ident = model_identity(*a, opts());
    Store store(test::tmp_db("damaged-resume"));
    const int64_t conv = store.create_conversation({});
    const std::vector<int32_t> fed = generate(*a, 16, 4);
    const std::vector<float> expect = logits_after(*a, kNextTurn);
    std::vector<int32_t> prompt = fed;
    prompt.insert(prompt.end(), kNextTurn.begin(), kNextTurn.end());

    for (const char* damage : {"UPDATE snapshot_chunks SET data = substr(data, 1, length(data) / 2) || x'00' || substr(data, length(data) / 2 + 2)",
                               "UPDATE snapshot_chunks SET data = zeroblob(length(data))"}) {
        SCOPED_TRACE(damage);
        a->truncate(int64_t(fed.size()));
        ASSERT_GT(save_snapshot(*a, store, conv, fed, ident), 0);
        store.db().exec(damage);
        auto b = load_model(kModel, opts());
        const ResumeResult r = resume(*b, store, conv, prompt, ident);
        EXPECT_EQ(r.restored, 0);
        EXPECT_NE(r.notice.find("could not be restored and was deleted"), std::string::npos) << r.notice;
        EXPECT_NE(r.notice.find("damaged"), std::string::npos) << r.notice;
        EXPECT_TRUE(store.snapshots(conv).empty());
        EXPECT_TRUE(bit_equal(logits_after(*b, prompt), expect));
    }

    // A blob that decompresses fine but is not this model's state: load_state refuses it.
    store.put_snapshot(conv, ident.fingerprint, ident.settings, fed, std::vector<uint8_t>(64, 1));
    auto c = load_model(kModel, opts());
    const ResumeResult r = resume(*c, store, conv, prompt, ident);
    EXPECT_EQ(r.restored, 0);
    EXPECT_NE(r.notice.find("bad magic"), std::string::npos) << r.notice;
    EXPECT_EQ(c->n_past(), 0);
}

// ---- across processes: this binary runs itself again with the child test selected.

std::string self_exe() {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "";
    return std::string(buf, size_t(n));
}

void write_ids(const std::string& p, std::span<const int32_t> ids) {
    std::ofstream f(p);
    for (int32_t x : ids) f << x << "\n";
}

std::vector<int32_t> read_ids(const std::string& p) {
    std::ifstream f(p);
    std::vector<int32_t> ids;
    for (int32_t x; f >> x;) ids.push_back(x);
    return ids;
}

TEST(Resume, InANewProcessTheNextLogitsAreIdentical) {
    const std::string db = test::tmp_db("xproc");
    const std::string base = db.substr(0, db.size() - 3);
    int64_t conv = 0;
    std::vector<float> expect;
    std::vector<int32_t> prompt;
    {
        auto a = load_model(kModel, opts());
        const ModelIdentity ident = model_identity(*a, opts());
        Store store(db);
        conv = store.create_conversation({.title = "cross-process"});
        const std::vector<int32_t> fed = generate(*a, 24, 16);
        ASSERT_GT(save_snapshot(*a, store, conv, fed, ident), 0);
        expect = logits_after(*a, kNextTurn);  // continuing in this process
        prompt = fed;
        prompt.insert(prompt.end(), kNextTurn.begin(), kNextTurn.end());
    }
    write_ids(base + ".ids", prompt);
    std::filesystem::remove(base + ".logits");
    const std::string cmd = "SLUICE_RESUME_CHILD='" + base + "' SLUICE_RESUME_CONV=" + std::to_string(conv) + " '" + self_exe() +
                            "' --gtest_filter=ResumeChild.RestoreAndContinue >'" + base + ".log' 2>&1";
    const int st = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << test::slurp(base + ".log");
    const std::string out = test::slurp(base + ".logits");
    ASSERT_EQ(out.size(), expect.size() * sizeof(float)) << test::slurp(base + ".log");
    EXPECT_EQ(0, std::memcmp(out.data(), expect.data(), out.size())) << "logits differ after a restore in a new process";
    EXPECT_EQ(test::slurp(base + ".restored"), std::to_string(prompt.size() - kNextTurn.size()));
}

// The other half of the test above; skipped when run on its own.
TEST(ResumeChild, RestoreAndContinue) {
    const char* base = std::getenv("SLUICE_RESUME_CHILD");
    if (!base) GTEST_SKIP() << "runs as the new process of Resume.InANewProcessTheNextLogitsAreIdentical";
    const int64_t conv = std::atoll(std::getenv("SLUICE_RESUME_CONV"));
    const std::vector<int32_t> prompt = read_ids(std::string(base) + ".ids");
    auto m = load_model(kModel, opts());
    Store store(std::string(base) + ".db");
    const ResumeResult r = resume(*m, store, conv, prompt, model_identity(*m, opts()));
    ASSERT_EQ(r.notice, "");
    const std::vector<float> l = logits_after(*m, std::span(prompt).subspan(size_t(r.restored)));
    std::ofstream(std::string(base) + ".logits", std::ios::binary).write(reinterpret_cast<const char*>(l.data()), std::streamsize(l.size() * 4));
    std::ofstream(std::string(base) + ".restored") << r.restored;
}

}  // namespace
}  // namespace sluice::history
