// Conversation state (prefill snapshot payload): save after N tokens, restore into a fresh model, the
// next token's logits are bit-identical to continuing; a blob that doesn't fit is refused cleanly.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "engine/model.h"

namespace sluice {
namespace {

const std::string kFx = std::string(SLUICE_FIXTURES) + "/qwen3/";

std::vector<int32_t> fixture_ids(const std::string& name) {
    std::ifstream in(kFx + name + ".tokens.txt");
    std::vector<int32_t> ids;
    for (int32_t x; in >> x;) ids.push_back(x);
    return ids;
}

class State : public ::testing::TestWithParam<std::string> {};

TEST_P(State, RestoredStateContinuesIdentically) {
    const auto ids = fixture_ids(GetParam());
    ModelOptions opt;
    opt.n_ctx = 80;
    auto a = load_model(kFx + GetParam() + ".gguf", opt);
    a->forward_tokens(std::span(ids).first(40), false);
    const std::vector<uint8_t> blob = a->save_state();
    const float* la = a->forward(ids[40]);
    const std::vector<float> expect(la, la + a->hparams().n_vocab);

    auto b = load_model(kFx + GetParam() + ".gguf", opt);
    b->load_state(blob);
    EXPECT_EQ(b->n_past(), 40);
    const float* lb = b->forward(ids[40]);
    EXPECT_EQ(0, std::memcmp(lb, expect.data(), expect.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, State, ::testing::Values("moe_a", "moe_b", "dense_a"));

TEST(StateErrors, MismatchedOrCorruptBlobsAreRefused) {
    ModelOptions opt;
    opt.n_ctx = 64;
    auto a = load_model(kFx + "moe_a.gguf", opt);
    const auto ids = fixture_ids("moe_a");
    a->forward_tokens(std::span(ids).first(10), false);
    std::vector<uint8_t> blob = a->save_state();

    auto other = load_model(kFx + "moe_b.gguf", opt);  // same arch, other shapes
    EXPECT_THROW(other->load_state(blob), Error);
    EXPECT_EQ(other->n_past(), 0);
    auto dense = load_model(kFx + "dense_a.gguf", opt);  // other arch
    try {
        dense->load_state(blob);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("qwen3moe"), std::string::npos) << e.what();
    }
    std::vector<uint8_t> cut(blob.begin(), blob.end() - 7);
    EXPECT_THROW(a->load_state(cut), Error);
    EXPECT_EQ(a->n_past(), 0);
    std::vector<uint8_t> bad = blob;
    bad[0] ^= 0xff;
    EXPECT_THROW(a->load_state(bad), Error);
    ModelOptions four;
    four.n_ctx = 4;  // context smaller than the blob
    auto small = load_model(kFx + "moe_a.gguf", four);
    EXPECT_THROW(small->load_state(blob), Error);
    a->load_state(blob);
    EXPECT_EQ(a->n_past(), 10);
}

}  // namespace
}  // namespace sluice
