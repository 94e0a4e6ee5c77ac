// Helpers for the reference tests: fixture files (token ids, float32 logits) and logit comparisons.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace sluice::reftest {

inline std::string tmp_dir() {
    const char* t = std::getenv("SLUICE_TMP");
    std::string d = t ? t : "/tmp/sluice-test";
    std::filesystem::create_directories(d);
    return d + "/";
}

// Whitespace-separated ids on line `line_no` of a text file.
inline std::vector<int32_t> read_ids(const std::string& path, int line_no = 0) {
    std::ifstream in(path);
    EXPECT_TRUE(in) << path;
    std::string line;
    for (int i = 0; i <= line_no; ++i) std::getline(in, line);
    std::istringstream ss(line);
    std::vector<int32_t> ids;
    for (int32_t x; ss >> x;) ids.push_back(x);
    return ids;
}

inline std::vector<float> read_f32(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    EXPECT_TRUE(in) << path;
    std::vector<float> v(size_t(in.tellg()) / 4);
    in.seekg(0);
    in.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * 4));
    return v;
}

// max over rows of max|a - ref| / max|ref| within the row.
inline double max_rel_err(const std::vector<float>& a, const std::vector<float>& ref, int64_t n) {
    double worst = 0;
    for (size_t r = 0; r < ref.size() / size_t(n); ++r) {
        double err = 0, mx = 0;
        for (int64_t j = 0; j < n; ++j) {
            const size_t i = r * size_t(n) + size_t(j);
            const double d = a[i] == ref[i] ? 0.0 : std::fabs(double(a[i]) - double(ref[i]));  // equal infinities: 0
            if (std::isnan(d)) return NAN;  // std::max would drop it: a NaN logit fails every bound
            err = std::max(err, d);
            mx = std::max(mx, double(std::fabs(ref[i])));
        }
        worst = std::max(worst, err / mx);
    }
    return worst;
}

struct Agreement {
    double top1 = 0, kl = 0;  // fraction of positions with the same argmax; mean KL(ref || a)
};

inline Agreement agreement(const std::vector<float>& a, const std::vector<float>& ref, int64_t n_vocab) {
    Agreement g;
    const size_t rows = ref.size() / size_t(n_vocab);
    for (size_t r = 0; r < rows; ++r) {
        const float* x = &a[r * size_t(n_vocab)];
        const float* y = &ref[r * size_t(n_vocab)];
        g.top1 += (std::max_element(x, x + n_vocab) - x) == (std::max_element(y, y + n_vocab) - y);
        const double mx = *std::max_element(x, x + n_vocab), my = *std::max_element(y, y + n_vocab);
        double zx = 0, zy = 0;
        for (int64_t j = 0; j < n_vocab; ++j) zx += std::exp(x[j] - mx), zy += std::exp(y[j] - my);
        double kl = 0;
        for (int64_t j = 0; j < n_vocab; ++j) {
            const double lp = y[j] - my - std::log(zy), lq = x[j] - mx - std::log(zx);
            kl += std::exp(lp) * (lp - lq);
        }
        g.kl += kl;
    }
    g.top1 /= double(rows);
    g.kl /= double(rows);
    return g;
}

}  // namespace sluice::reftest
