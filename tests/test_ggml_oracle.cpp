// llama.cpp as the reference for every quantized type sluice reads: its own libggml-base.so (npm
// @node-llama-cpp/linux-x64, installed by scripts/deps.sh) quantizes random rows, and sluice must
// read those bytes exactly as ggml does (dequantize bit for bit), dot them as ggml's floats say, and
// write bytes that ggml reads as sluice does. Types are taken from the type table (every block type
// with kernels), so a type gains these checks the day it gains kernels.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "engine/tensor/kernels.h"
#include "tests/kernels_test_util.h"

namespace sluice {
namespace {

using QuantizeChunk = size_t (*)(int type, const float* src, void* dst, int64_t start, int64_t nrows,
                                 int64_t n_per_row, const float* imatrix);
using RequiresImatrix = bool (*)(int type);
using DequantizeRow = void (*)(const void* x, float* y, int64_t k);

// The prebuilt library, opened once; SLUICE_GGML_BASE overrides its path.
void* ggml() {
    static void* lib = [] {
        const char* env = std::getenv("SLUICE_GGML_BASE");
        std::string path = env ? env : SLUICE_SOURCE_DIR "/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so";
        void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!h) ADD_FAILURE() << "cannot open llama.cpp's " << path << " (" << dlerror() << "): run scripts/deps.sh";
        return h;
    }();
    return lib;
}

template <typename F>
F sym(const std::string& name) {
    void* lib = ggml();
    return lib ? reinterpret_cast<F>(dlsym(lib, name.c_str())) : nullptr;
}

std::vector<GgmlType> block_types() {
    std::vector<GgmlType> v;
    for (uint32_t id = 0; id < 64; id++) {
        auto ti = type_info(id);
        if (ti && ti->has_kernels && ti->block_size > 1) v.push_back(GgmlType(id));
    }
    return v;
}

class GgmlOracle : public ::testing::TestWithParam<GgmlType> {};

// Rows of 1024 with gaussian values whose scale changes every 32, a few outliers, and an importance
// vector (ggml's IQ1 / IQ2 quantizers need one; the others take a second path with it).
struct Case {
    int64_t rows = 8, cols = 1024;
    std::vector<float> x, imatrix;
    explicit Case(std::mt19937& rng) {
        for (int64_t r = 0; r < rows; r++) {
            auto row = test::random_row(rng, cols);
            row[size_t(rng() % cols)] *= 8.f;
            x.insert(x.end(), row.begin(), row.end());
        }
        std::uniform_real_distribution<float> u(0.1f, 2.f);
        for (int64_t c = 0; c < cols; c++) imatrix.push_back(u(rng));
    }
};

TEST_P(GgmlOracle, ReadsLlamaCppBytesAsGgmlDoes) {
    const GgmlType t = GetParam();
    const uint32_t seed = test::fresh_seed();
    SCOPED_TRACE("type " + std::string(type_name(t)) + " seed " + std::to_string(seed));
    auto quantize = sym<QuantizeChunk>("ggml_quantize_chunk");
    auto requires_imatrix = sym<RequiresImatrix>("ggml_quantize_requires_imatrix");
    auto dequantize = sym<DequantizeRow>(std::string("dequantize_row_") + type_name(t));
    ASSERT_TRUE(quantize && requires_imatrix && dequantize) << "llama.cpp's library lacks a symbol for " << type_name(t);

    std::mt19937 rng(seed);
    Case c(rng);
    const int64_t rb = row_bytes(t, c.cols);
    for (bool with_imatrix : {true, false}) {
        if (!with_imatrix && requires_imatrix(int(t))) continue;
        SCOPED_TRACE(with_imatrix ? "with importance" : "without importance");
        std::vector<uint8_t> q(size_t(rb * c.rows));
        ASSERT_EQ(quantize(int(t), c.x.data(), q.data(), 0, c.rows, c.cols, with_imatrix ? c.imatrix.data() : nullptr),
                  size_t(rb * c.rows));
        std::vector<float> want(size_t(c.cols)), got(size_t(c.cols));
        for (int64_t r = 0; r < c.rows; r++) {
            const uint8_t* row = q.data() + r * rb;
            dequantize(row, want.data(), c.cols);
            for (Isa isa : test::available_isas()) {
                dequantize_row_isa(isa, t, row, got.data(), c.cols);
                ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * 4))
                    << "row " << r << " on " << isa_name(isa) << ": first value ggml " << want[0] << " sluice " << got[0];
            }
            // The integer dot against prepared activations stays within int8 rounding of ggml's floats.
            auto a = test::random_row(rng, c.cols);
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < c.cols; i++) {
                ref += double(want[size_t(i)]) * a[size_t(i)];
                mag += std::fabs(double(want[size_t(i)]) * a[size_t(i)]);
            }
            for (Isa isa : test::available_isas()) {
                std::vector<uint8_t> act(act_bytes(t, c.cols) + 64);
                prepare_act_isa(isa, t, a.data(), act.data(), c.cols);
                float dot = vec_dot_isa(isa, t, row, act.data(), c.cols);
                EXPECT_NEAR(dot, ref, 0.01 * mag + 1e-6) << "row " << r << " on " << isa_name(isa);
            }
        }
    }
}

TEST_P(GgmlOracle, GgmlReadsSluiceBytesAsSluiceDoes) {
    const GgmlType t = GetParam();
    const uint32_t seed = test::fresh_seed();
    SCOPED_TRACE("type " + std::string(type_name(t)) + " seed " + std::to_string(seed));
    auto dequantize = sym<DequantizeRow>(std::string("dequantize_row_") + type_name(t));
    ASSERT_TRUE(dequantize);
    std::mt19937 rng(seed);
    Case c(rng);
    const int64_t rb = row_bytes(t, c.cols);
    std::vector<uint8_t> q(static_cast<size_t>(rb));
    std::vector<float> ours(size_t(c.cols)), theirs(size_t(c.cols));
    for (int64_t r = 0; r < c.rows; r++) {
        quantize_row(t, c.x.data() + r * c.cols, q.data(), c.cols);
        dequantize_row(t, q.data(), ours.data(), c.cols);
        dequantize(q.data(), theirs.data(), c.cols);
        ASSERT_EQ(0, std::memcmp(ours.data(), theirs.data(), ours.size() * 4)) << "row " << r;
    }
}

INSTANTIATE_TEST_SUITE_P(Types, GgmlOracle, ::testing::ValuesIn(block_types()),
                         [](const auto& info) { return std::string(type_name(info.param)); });

TEST(GgmlOracleTypes, EveryKernelTypeIsChecked) {
    // The table-driven list must hold the types sluice has claimed since IQ4 (a silently empty
    // list would check nothing).
    auto v = block_types();
    for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::IQ4_XS})
        EXPECT_NE(std::find(v.begin(), v.end(), t), v.end()) << type_name(t);
}

}  // namespace
}  // namespace sluice
