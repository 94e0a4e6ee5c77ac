// Writes engine/tensor/iq_grids.inc: the lookup grids of ggml's IQ1_S / IQ1_M / IQ2_* / IQ3_* types
// (a group of 8 or 4 weights is one index into a fixed table of value patterns). The tables are part
// of the file format, so they are read here from llama.cpp itself: blocks are built that pick each
// grid entry with positive signs and a known scale, ggml's own dequantize_row_* (exported by the npm
// package's libggml-base.so) turns them into floats, and the floats give back the entry. Each grid
// is written as macros of its levels and a code per entry (2 or 3 bits a value), which C++
// (engine/tensor/iq_grids.h) expands; the GPU gets them from there (shaders/vk_runtime.cpp make_iq_grids).
//
//   g++ -O1 -std=c++20 bench/peer/gen_iq_grids.cpp -ldl -o /tmp/gen_iq_grids
//   /tmp/gen_iq_grids node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so \
//       > engine/tensor/iq_grids.inc
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using Deq = void (*)(const void *, float *, int64_t);
constexpr uint16_t kOne = 0x3C00;  // fp16 1.0

struct Grid {
  const char *name;
  int entries, width;     // width: values per entry (8, or 4 for the IQ3 grids)
  std::vector<int> vals;  // entries * width
};

static Deq load(void *lib, const char *sym) {
  auto f = reinterpret_cast<Deq>(dlsym(lib, sym));
  if (!f) { fprintf(stderr, "missing %s\n", sym); exit(1); }
  return f;
}

// Dequantizes nblocks blocks of `bytes` each and returns the floats.
static std::vector<float> run(Deq f, const std::vector<uint8_t> &blocks, int nblocks) {
  std::vector<float> y(size_t(nblocks) * 256);
  f(blocks.data(), y.data(), int64_t(nblocks) * 256);
  return y;
}

// Turns y = scale * value into integers, failing loudly on anything not integral.
static int whole(float y, float scale, float offset) {
  float v = y / scale - offset;
  int r = int(std::lround(v));
  if (std::fabs(v - r) > 1e-4f) { fprintf(stderr, "not integral: %g\n", v); exit(1); }
  return r;
}

static void put16(std::vector<uint8_t> &b, size_t at, uint16_t v) { memcpy(&b[at], &v, 2); }

// IQ2_XXS: 66-byte blocks; per 32: 4 index bytes, then a word of 4x7 sign bits and a 4-bit scale.
static Grid iq2xxs(void *lib) {
  Grid g{"iq2xxs", 256, 8, {}};
  int nb = 256 / 32;
  std::vector<uint8_t> b(size_t(nb) * 66, 0);
  for (int e = 0; e < 256; e++) {
    size_t blk = size_t(e / 32) * 66, ib = (e % 32) / 4, l = e % 4;
    put16(b, blk, kOne);
    b[blk + 2 + 8 * ib + l] = uint8_t(e);  // sign word and scale stay 0: db = 0.125
  }
  auto y = run(load(lib, "dequantize_row_iq2_xxs"), b, nb);
  for (float v : y) g.vals.push_back(whole(v, 0.125f, 0));
  return g;
}

// IQ2_XS: 74-byte blocks; a uint16 per 8 (9-bit index, 7 sign bits), then 8 scale bytes.
static Grid iq2xs(void *lib) {
  Grid g{"iq2xs", 512, 8, {}};
  int nb = 512 / 32;
  std::vector<uint8_t> b(size_t(nb) * 74, 0);
  for (int e = 0; e < 512; e++) {
    size_t blk = size_t(e / 32) * 74;
    put16(b, blk, kOne);
    put16(b, blk + 2 + 2 * (e % 32), uint16_t(e));
  }
  auto y = run(load(lib, "dequantize_row_iq2_xs"), b, nb);
  for (float v : y) g.vals.push_back(whole(v, 0.125f, 0));
  return g;
}

// IQ2_S: 82-byte blocks; qs[32] low index bytes, qs[32..63] signs, qh[8] 2 high bits per 8.
static Grid iq2s(void *lib) {
  Grid g{"iq2s", 1024, 8, {}};
  int nb = 1024 / 32;
  std::vector<uint8_t> b(size_t(nb) * 82, 0);
  for (int e = 0; e < 1024; e++) {
    size_t blk = size_t(e / 32) * 82, k = e % 32, ib = k / 4, l = k % 4;
    put16(b, blk, kOne);
    b[blk + 2 + k] = uint8_t(e & 255);
    b[blk + 2 + 64 + ib] |= uint8_t((e >> 8) << (2 * l));
  }
  auto y = run(load(lib, "dequantize_row_iq2_s"), b, nb);
  for (float v : y) g.vals.push_back(whole(v, 0.125f, 0));
  return g;
}

// IQ3_XXS: 98-byte blocks; qs[64] an index byte per 4, then a sign/scale word per 32.
static Grid iq3xxs(void *lib) {
  Grid g{"iq3xxs", 256, 4, {}};
  int nb = 256 / 64;
  std::vector<uint8_t> b(size_t(nb) * 98, 0);
  for (int e = 0; e < 256; e++) {
    size_t blk = size_t(e / 64) * 98;
    put16(b, blk, kOne);
    b[blk + 2 + e % 64] = uint8_t(e);  // db = 0.25
  }
  auto y = run(load(lib, "dequantize_row_iq3_xxs"), b, nb);
  for (float v : y) g.vals.push_back(whole(v, 0.25f, 0));
  return g;
}

// IQ3_S: 110-byte blocks; qs[64] low index bytes, qh[8] a high bit per 4, signs[32], scales[4].
static Grid iq3s(void *lib) {
  Grid g{"iq3s", 512, 4, {}};
  int nb = 512 / 64;
  std::vector<uint8_t> b(size_t(nb) * 110, 0);
  for (int e = 0; e < 512; e++) {
    size_t blk = size_t(e / 64) * 110, k = e % 64;
    put16(b, blk, kOne);
    b[blk + 2 + k] = uint8_t(e & 255);
    b[blk + 2 + 64 + k / 8] |= uint8_t((e >> 8) << (k % 8));  // db = 1
  }
  auto y = run(load(lib, "dequantize_row_iq3_s"), b, nb);
  for (float v : y) g.vals.push_back(whole(v, 1.0f, 0));
  return g;
}

// IQ1_S: 50-byte blocks; qs[32] low index bytes, qh[8] uint16 (3 high bits per 8, scale, delta sign).
static Grid iq1s(void *lib) {
  Grid g{"iq1s", 2048, 8, {}};
  int nb = 2048 / 32;
  std::vector<uint8_t> b(size_t(nb) * 50, 0);
  for (int e = 0; e < 2048; e++) {
    size_t blk = size_t(e / 32) * 50, k = e % 32, ib = k / 4, l = k % 4;
    put16(b, blk, kOne);
    b[blk + 2 + k] = uint8_t(e & 255);
    uint16_t qh;
    memcpy(&qh, &b[blk + 34 + 2 * ib], 2);
    qh |= uint16_t((e >> 8) << (3 * l));  // dl = 1, delta +0.125
    put16(b, blk + 34 + 2 * ib, qh);
  }
  auto y = run(load(lib, "dequantize_row_iq1_s"), b, nb);
  for (float v : y) g.vals.push_back(whole(v, 1.0f, 0.125f));
  return g;
}

static void emit(const Grid &g) {
  std::vector<int> levels(g.vals);
  std::sort(levels.begin(), levels.end());
  levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
  int bits = levels.size() <= 4 ? 2 : 3;
  if (levels.size() > 8) { fprintf(stderr, "%s: %zu levels\n", g.name, levels.size()); exit(1); }
  std::string up(g.name);
  for (char &ch : up) ch = char(toupper(ch));
  printf("// %s: %d entries of %d values; value j of an entry = levels[code >> %d*j & %d]\n", g.name,
         g.entries, g.width, bits, (1 << bits) - 1);
  printf("#define %s_LEVELS ", up.c_str());
  for (size_t i = 0; i < levels.size(); i++) printf("%s%d", i ? ", " : "", levels[i]);
  printf("\n#define %s_CODES", up.c_str());
  for (int e = 0; e < g.entries; e++) {
    unsigned code = 0;
    for (int j = 0; j < g.width; j++) {
      int v = g.vals[size_t(e) * g.width + j];
      code |= unsigned(std::find(levels.begin(), levels.end(), v) - levels.begin()) << (bits * j);
    }
    printf("%s0x%04x", e % 12 ? ", " : (e ? ", \\\n    " : " \\\n    "), code);
  }
  printf("\n");
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: %s libggml-base.so\n", argv[0]); return 2; }
  void *lib = dlopen(argv[1], RTLD_NOW);
  if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  printf("// Generated by bench/peer/gen_iq_grids.cpp from llama.cpp v0.5.0's libggml-base.so (its\n"
         "// dequantize_row_* on blocks that pick each entry); do not edit. Read by engine/tensor/iq_grids.h.\n");
  for (auto f : {iq2xxs, iq2xs, iq2s, iq3xxs, iq3s, iq1s}) emit(f(lib));
  return 0;
}
