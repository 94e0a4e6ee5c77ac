// The shipped demo model (models/demo.gguf, trained by tools/demo/train_demo.py) against PyTorch's
// float32 logits on the trained weights (tests/fixtures/demo/). The trainer projected every matrix onto
// the Q8_0 grid before evaluating, so the Q8_0 file holds exactly the weights PyTorch used: our F32
// rewrite of it must match to 1e-4, rewriting that back to Q8_0 must give the same bytes, and the Q8_0
// file itself (activations quantized to 8 bits in the dot products) must agree on the top token.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/demo_model.h"
#include "engine/gguf/gguf.h"
#include "engine/gguf/requantize.h"
#include "engine/model.h"
#include "engine/text/chat_template.h"
#include "engine/text/tokenizer.h"

namespace sluice {
namespace {

const std::string kModel = std::string(SLUICE_SOURCE_DIR) + "/models/demo.gguf";
const std::string kDir = std::string(SLUICE_FIXTURES) + "/demo/";

std::string tmp_path(const std::string& name) {
    const char* t = std::getenv("SLUICE_TMP");
    std::string d = std::string(t ? t : "/tmp/sluice-test") + "/demo";
    std::filesystem::create_directories(d);
    return d + "/" + std::to_string(getpid()) + "-" + name;  // ctest runs tests as parallel processes
}

std::vector<int32_t> read_ids(const std::string& path, int line_no = 0) {
    std::ifstream in(path);
    EXPECT_TRUE(in) << path;
    std::string line;
    for (int i = 0; i <= line_no; ++i) std::getline(in, line);
    std::istringstream ss(line);
    std::vector<int32_t> ids;
    for (int32_t x; ss >> x;) ids.push_back(x);
    return ids;
}

std::vector<float> read_f32(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    EXPECT_TRUE(in) << path;
    std::vector<float> v(size_t(in.tellg()) / 4);
    in.seekg(0);
    in.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * 4));
    return v;
}

std::vector<float> logits_of(const std::string& gguf, const std::vector<int32_t>& ids) {
    ModelOptions opt;
    opt.n_ctx = 128;
    return load_model(gguf, opt)->forward_tokens(ids, true);
}

// max over positions of max|a - ref| / max|ref| within the row.
double max_rel_err(const std::vector<float>& a, const std::vector<float>& ref, size_t n_vocab) {
    double worst = 0;
    for (size_t r = 0; r < ref.size() / n_vocab; ++r) {
        double err = 0, mx = 0;
        for (size_t j = r * n_vocab; j < (r + 1) * n_vocab; ++j) {
            const double d = a[j] == ref[j] ? 0.0 : std::fabs(double(a[j]) - double(ref[j]));  // equal infinities: 0
            if (std::isnan(d)) return NAN;  // std::max would drop it
            err = std::max(err, d);
            mx = std::max(mx, double(std::fabs(ref[j])));
        }
        worst = std::max(worst, err / mx);
    }
    return worst;
}

std::vector<int32_t> greedy(const std::string& gguf, const std::vector<int32_t>& prompt, int32_t stop, int max_new) {
    ModelOptions opt;
    opt.n_ctx = 128;
    auto m = load_model(gguf, opt);
    std::vector<float> last = m->forward_tokens(prompt, false);
    std::vector<int32_t> out;
    for (int i = 0; i < max_new; ++i) {
        const int32_t next = int32_t(std::max_element(last.begin(), last.end()) - last.begin());
        out.push_back(next);
        if (next == stop) break;
        const float* l = m->forward(next);
        last.assign(l, l + m->hparams().n_vocab);
    }
    return out;
}

TEST(DemoModel, ShippedFileIsQwen3MoeQ8_0WithChatTemplate) {
    auto f = gguf::File::open(kModel);
    EXPECT_LE(f->file_size(), 25u << 20);
    EXPECT_EQ(f->get_string("general.architecture"), "qwen3moe");
    for (const auto& t : f->tensors()) {
        const bool f32 = t.n_dims < 2 || t.name.find("_norm") != std::string::npos ||
                         t.name.find("ffn_gate_inp") != std::string::npos;
        EXPECT_EQ(t.type, f32 ? GgmlType::F32 : GgmlType::Q8_0) << t.name;
    }
    text::Tokenizer tok(text::from_gguf(*f));
    EXPECT_EQ(text::ChatTemplate::detect(tok.vocab().chat_template).kind(), text::ChatKind::ChatML);
    EXPECT_EQ(tok.vocab().eos_id, tok.find("<|im_end|>"));
}

TEST(DemoModel, TokenizerRoundTripsTheReferenceConversation) {
    auto f = gguf::File::open(kModel);
    text::Tokenizer tok(text::from_gguf(*f));
    const auto ids = read_ids(kDir + "demo.tokens.txt");
    const std::string s = tok.decode(ids, true);
    EXPECT_EQ(s.rfind("<|im_start|>user\nWhat does 'harbor' mean?<|im_end|>\n<|im_start|>assistant\n", 0), 0u) << s;
    EXPECT_EQ(tok.encode(s, true), ids);  // the ids HF's tokenizer gave
}

TEST(DemoModel, F32RewriteMatchesTransformers) {
    const std::string f32 = tmp_path("demo.f32.gguf");
    requantize_file(kModel, f32, GgmlType::F32);
    const auto ids = read_ids(kDir + "demo.tokens.txt");
    const auto ref = read_f32(kDir + "demo.logits.f32");
    const auto got = logits_of(f32, ids);
    ASSERT_EQ(got.size(), ref.size());
    const double err = max_rel_err(got, ref, ref.size() / ids.size());
    std::printf("  demo f32 rewrite: max rel err %.3g over %zu positions\n", err, ids.size());
    EXPECT_LE(err, 1e-4);

    // The greedy answer PyTorch gave to "What does 'harbor' mean?", token for token.
    const auto prompt = read_ids(kDir + "demo.greedy.txt", 0);
    const auto expect = read_ids(kDir + "demo.greedy.txt", 1);
    EXPECT_EQ(greedy(f32, prompt, expect.back(), 64), expect);

    // Rewriting the exact weights as Q8_0 again reproduces the shipped tensors byte for byte.
    const std::string q8 = tmp_path("demo.q8_0.gguf");
    requantize_file(f32, q8, GgmlType::Q8_0);
    auto a = gguf::File::open(kModel), b = gguf::File::open(q8);
    ASSERT_EQ(a->tensors().size(), b->tensors().size());
    for (size_t i = 0; i < a->tensors().size(); ++i) {
        const auto &ta = a->tensors()[i], &tb = b->tensors()[i];
        ASSERT_EQ(ta.nbytes, tb.nbytes) << ta.name;
        EXPECT_EQ(std::memcmp(a->data(ta), b->data(tb), ta.nbytes), 0) << ta.name;
    }
    std::filesystem::remove(f32);
    std::filesystem::remove(q8);
}

TEST(DemoModel, ShippedQ8_0AgreesWithTransformers) {
    const auto ids = read_ids(kDir + "demo.tokens.txt");
    const auto ref = read_f32(kDir + "demo.logits.f32");
    const auto got = logits_of(kModel, ids);
    const size_t n_vocab = ref.size() / ids.size();
    double top1 = 0, kl = 0;
    for (size_t r = 0; r < ids.size(); ++r) {
        const float* x = &got[r * n_vocab];
        const float* y = &ref[r * n_vocab];
        top1 += (std::max_element(x, x + n_vocab) - x) == (std::max_element(y, y + n_vocab) - y);
        const double mx = *std::max_element(x, x + n_vocab), my = *std::max_element(y, y + n_vocab);
        double zx = 0, zy = 0;
        for (size_t j = 0; j < n_vocab; ++j) zx += std::exp(x[j] - mx), zy += std::exp(y[j] - my);
        for (size_t j = 0; j < n_vocab; ++j) {
            const double lp = y[j] - my - std::log(zy), lq = x[j] - mx - std::log(zx);
            kl += std::exp(lp) * (lp - lq);
        }
    }
    top1 /= double(ids.size());
    kl /= double(ids.size());
    std::printf("  demo q8_0: top-1 agreement %.3f, mean KL %.3g, max rel err %.3g\n", top1, kl,
                max_rel_err(got, ref, n_vocab));
    // Measured (2026-11-21, AVX-512 kernels): 1.000 and 1.2e-3. Wrong weights or a broken kernel land
    // near 0 and > 1.
    EXPECT_GE(top1, 0.98);
    EXPECT_LE(kl, 1e-2);
}

TEST(DemoModel, DemoArgumentFindsTheShippedFile) {
    const std::string p = demo_model_path();
    EXPECT_TRUE(std::filesystem::equivalent(p, kModel)) << p;
    EXPECT_EQ(resolve_model_path("demo"), p);
    EXPECT_EQ(resolve_model_path("other.gguf"), "other.gguf");
}

TEST(DemoModel, RunDemoAnswersATrainingQuestion) {
    const std::string out = tmp_path("run.out");
    const std::string cmd = std::string(SLUICE_BIN) + " run demo -p \"What does 'harbor' mean?\" --chat --temp 0 -n 48 >" +
                            out + " 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    std::ifstream in(out);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str(), "Harbor (noun): A station for rest and entertainment; a place of security and comfort; "
                        "a refuge; a shelter.\n");
    std::filesystem::remove(out);
}

}  // namespace
}  // namespace sluice
