// llama_peer: llama.cpp v0.5.0 measured the way sluice's bench measures itself, so benchmarks can
// quote ratios against it from the same run. Built against the prebuilt libraries of the npm
// package @node-llama-cpp/linux-x64 (see build.sh); llama.cpp's headers come from its release bundle.
//
//   llama_peer -m MODEL [-t 2] [-p 128] [-n 32] [-r 5] [--no-mmap] [--no-repack] [--json]
//   llama_peer -m MODEL --logits FILE --tokens 1,2,3 [--kv-type f32 --no-fa]
//                                    (float32 logits of every position, n_tokens x n_vocab)
#include "llama.h"
#include "ggml-backend.h"

#include "engine/sampler.h"

#include <dlfcn.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Options {
    std::string model;
    int threads = 2;
    int prompt_tokens = 128;
    int decode_tokens = 32;
    int reps = 5;
    int prompt_runs = 1;
    int ubatch = 512;  // llama.cpp's default physical batch
    uint32_t seed = 42;
    bool mmap = true;
    bool repack = true;
    bool json = false;
    bool verbose = false;
    std::string kv_type = "f16";  // llama.cpp's default; f32 for reference comparisons
    std::string lazy = "auto";
    bool flash_attn = true;  // false: disabled; true: llama.cpp's default (auto)
    int n_gpu_layers = -1;   // GPU builds: layers in VRAM (llama.cpp's default -1: all)
    bool cpu_moe = false;    // GPU builds: routed expert tensors stay in host memory (llama.cpp's --cpu-moe)
    std::string logits_file;  // logits mode when set
    std::vector<llama_token> tokens;
};

[[noreturn]] void die(const std::string & msg) {
    fprintf(stderr, "llama_peer: %s\n", msg.c_str());
    exit(1);
}

void usage() {
    fprintf(stderr,
        "usage: llama_peer -m MODEL [options]\n"
        "  -t N          threads (default 2)\n"
        "  -p N          prompt tokens, processed in one llama_decode call (default 128)\n"
        "  -n N          decode tokens per repetition, greedy (default 32)\n"
        "  -r N          decode repetitions; the median is reported (default 5)\n"
        "  --prompt-runs N  process the prompt N times from an empty cache (default 1: once)\n"
        "  -ub N         physical batch size (default 512)\n"
        "  --seed N      seed of the prompt's token ids (default 42)\n"
        "  --no-mmap     read the weights into memory instead of mapping the file\n"
        "  --no-repack   use_extra_bufts = false: no repacking of weights into anonymous memory\n"
        "  --lazy MODE   off|auto|on: llama.cpp's on-demand reading of marked tensors (default auto)\n"
        "  --kv-type T   f16|f32 KV cache (default f16)\n"
        "  --no-fa       flash attention off (llama.cpp's default is auto)\n"
        "  -ngl N        GPU builds: layers offloaded (default -1: all)\n"
        "  --cpu-moe     GPU builds: keep *_exps tensors in host memory (llama.cpp's --cpu-moe)\n"
        "  --json        one JSON object on stdout\n"
        "  --logits FILE --tokens 1,2,3\n"
        "                write float32 logits of every position (n_tokens x n_vocab, row-major, LE)\n"
        "  -v            llama.cpp's own log on stderr\n");
    exit(2);
}

std::vector<llama_token> parse_tokens(const std::string & s) {
    std::vector<llama_token> out;
    size_t i = 0;
    while (i < s.size()) {
        size_t j = s.find(',', i);
        if (j == std::string::npos) j = s.size();
        std::string item = s.substr(i, j - i);
        char * end = nullptr;
        long v = strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || v < 0) die("bad token id '" + item + "' in --tokens");
        out.push_back((llama_token) v);
        i = j + 1;
    }
    return out;
}

int parse_int(const char * s, const char * flag, int min) {
    char * end = nullptr;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < min || v > 1 << 24) {
        die(std::string("bad value '") + s + "' for " + flag + " (expected an integer >= " + std::to_string(min) + ")");
    }
    return (int) v;
}

Options parse_args(int argc, char ** argv) {
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> const char * {
            if (i + 1 >= argc) die("missing value after " + a);
            return argv[++i];
        };
        if (a == "-m") o.model = next();
        else if (a == "-t") o.threads = parse_int(next(), "-t", 1);
        else if (a == "-p") o.prompt_tokens = parse_int(next(), "-p", 1);
        else if (a == "-n") o.decode_tokens = parse_int(next(), "-n", 1);
        else if (a == "-r") o.reps = parse_int(next(), "-r", 1);
        else if (a == "--prompt-runs") o.prompt_runs = parse_int(next(), "--prompt-runs", 1);
        else if (a == "-ub") o.ubatch = parse_int(next(), "-ub", 1);
        else if (a == "--seed") o.seed = (uint32_t) parse_int(next(), "--seed", 0);
        else if (a == "--no-mmap") o.mmap = false;
        else if (a == "--no-repack") o.repack = false;
        else if (a == "--lazy") o.lazy = next();
        else if (a == "--kv-type") o.kv_type = next();
        else if (a == "--no-fa") o.flash_attn = false;
        else if (a == "-ngl") o.n_gpu_layers = (int) strtol(next(), nullptr, 10);
        else if (a == "--cpu-moe") o.cpu_moe = true;
        else if (a == "--json") o.json = true;
        else if (a == "--logits") o.logits_file = next();
        else if (a == "--tokens") o.tokens = parse_tokens(next());
        else if (a == "-v") o.verbose = true;
        else if (a == "-h" || a == "--help") usage();
        else die("unknown option '" + a + "' (see --help)");
    }
    if (o.model.empty()) usage();
    if (!o.logits_file.empty() && o.tokens.empty()) die("--logits needs --tokens 1,2,3");
    if (o.logits_file.empty() && !o.tokens.empty()) die("--tokens is only used with --logits FILE");
    if (o.kv_type != "f16" && o.kv_type != "f32") die("--kv-type must be f16 or f32, got '" + o.kv_type + "'");
    if (o.lazy != "off" && o.lazy != "auto" && o.lazy != "on") die("--lazy must be off, auto or on, got '" + o.lazy + "'");
    return o;
}

bool g_verbose = false;

void log_cb(ggml_log_level level, const char * text, void *) {
    static bool last_shown = false;  // CONT lines follow the level of the line they continue
    bool show = level == GGML_LOG_LEVEL_CONT ? last_shown : (g_verbose || level == GGML_LOG_LEVEL_ERROR);
    last_shown = show;
    if (show) fputs(text, stderr);
}

// The directory holding libllama: the CPU variant libraries (libggml-cpu-*.so) sit beside it.
std::string library_dir() {
    Dl_info info{};
    if (dladdr((void *) &llama_backend_init, &info) == 0 || info.dli_fname == nullptr) {
        die("cannot locate libllama (dladdr failed)");
    }
    std::string path = info.dli_fname;
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// sluice's argmax (engine/sampler.h), so that both engines' decode loops spend the same on it.
llama_token argmax(const float * logits, int n_vocab) {
    return (llama_token) sluice::argmax(std::span<const float>(logits, size_t(n_vocab)));
}

// Fills `b` with tokens at positions pos0.. of sequence 0; only the last one (or all) outputs logits.
void fill_batch(llama_batch & b, const llama_token * tokens, int n, int pos0, bool all_logits) {
    b.n_tokens = n;
    for (int i = 0; i < n; i++) {
        b.token[i] = tokens[i];
        b.pos[i] = pos0 + i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = all_logits || i == n - 1;
    }
}

void decode_or_die(llama_context * ctx, llama_batch & b, const char * what) {
    int rc = llama_decode(ctx, b);
    if (rc != 0) die(std::string("llama_decode failed (") + what + "): rc " + std::to_string(rc));
}

std::string json_escape(const std::string & s) {
    std::string out;
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') { out += '\\'; out += (char) c; }
        else if (c < 0x20) { char buf[8]; snprintf(buf, sizeof buf, "\\u%04x", c); out += buf; }
        else out += (char) c;
    }
    return out;
}

uint64_t rss_peak_bytes() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t) ru.ru_maxrss * 1024;  // Linux reports KiB
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Writes llama.cpp's logits for every position of o.tokens, processed as one batch.
int run_logits(const Options & o, llama_context * ctx, int n_vocab) {
    int n = (int) o.tokens.size();
    for (llama_token t : o.tokens) {
        if (t >= n_vocab) die("token id " + std::to_string(t) + " is outside the vocabulary (n_vocab " + std::to_string(n_vocab) + ")");
    }
    llama_batch b = llama_batch_init(n, 0, 1);
    fill_batch(b, o.tokens.data(), n, 0, true);
    decode_or_die(ctx, b, "logits");
    FILE * f = fopen(o.logits_file.c_str(), "wb");
    if (!f) die("cannot open '" + o.logits_file + "' for writing: " + strerror(errno));
    for (int i = 0; i < n; i++) {
        const float * row = llama_get_logits_ith(ctx, i);
        if (!row) die("no logits for position " + std::to_string(i));
        if (fwrite(row, sizeof(float), (size_t) n_vocab, f) != (size_t) n_vocab) die("short write to '" + o.logits_file + "'");
    }
    if (fclose(f) != 0) die("cannot close '" + o.logits_file + "': " + strerror(errno));
    llama_batch_free(b);
    if (o.json) {
        printf("{\"engine\":\"llama.cpp\",\"version\":\"v0.5.0\",\"model\":\"%s\",\"logits_file\":\"%s\","
               "\"n_tokens\":%d,\"n_vocab\":%d,\"kv_type\":\"%s\"}\n",
               json_escape(o.model).c_str(), json_escape(o.logits_file).c_str(), n, n_vocab, o.kv_type.c_str());
    } else {
        printf("wrote %s: %d x %d float32 logits\n", o.logits_file.c_str(), n, n_vocab);
    }
    return 0;
}

}  // namespace

int main(int argc, char ** argv) {
    Options o = parse_args(argc, argv);
    g_verbose = o.verbose;
    llama_log_set(log_cb, nullptr);

    struct stat st{};
    if (stat(o.model.c_str(), &st) != 0) die("cannot stat model '" + o.model + "': " + strerror(errno));

    // The CPU backend is one of several libggml-cpu-<variant>.so; ggml picks the best for this CPU.
    ggml_backend_load_all_from_path(library_dir().c_str());
    llama_backend_init();

    llama_model_params mp = llama_model_default_params();
    mp.load_mode = o.mmap ? LLAMA_LOAD_MODE_AUTO : LLAMA_LOAD_MODE_NONE;  // AUTO maps the file on CPU
    mp.lazy_mode = o.lazy == "off" ? LLAMA_LAZY_MODE_OFF : o.lazy == "on" ? LLAMA_LAZY_MODE_ON : LLAMA_LAZY_MODE_AUTO;
    mp.use_extra_bufts = o.repack;
    mp.n_gpu_layers = o.n_gpu_layers;
    // --cpu-moe: llama.cpp's own pattern for routed experts, pinned to the CPU's buffer type.
    const llama_model_tensor_buft_override cpu_moe[] = {
        {"\\.ffn_(up|down|gate|gate_up)_(ch|)exps", ggml_backend_cpu_buffer_type()}, {nullptr, nullptr}};
    if (o.cpu_moe) mp.tensor_buft_overrides = cpu_moe;
    double t_load = now_s();
    llama_model * model = llama_model_load_from_file(o.model.c_str(), mp);
    if (!model) die("llama.cpp could not load '" + o.model + "' (run with -v for its log)");
    t_load = now_s() - t_load;

    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    if (n_vocab <= 0) die("model has no vocabulary size");

    const bool logits_mode = !o.logits_file.empty();
    const int n_in = logits_mode ? (int) o.tokens.size() : o.prompt_tokens;
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) (logits_mode ? n_in : n_in + o.decode_tokens);
    cp.n_batch = (uint32_t) n_in;  // the whole prompt is one llama_decode call
    cp.n_ubatch = (uint32_t) (logits_mode ? n_in : std::min(n_in, o.ubatch));
    cp.n_seq_max = 1;
    cp.n_threads = o.threads;
    cp.n_threads_batch = o.threads;
    cp.no_perf = true;
    if (!o.flash_attn) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    if (o.kv_type == "f32") { cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32; }
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) die("llama.cpp could not create a context (run with -v for its log)");

    if (logits_mode) {
        int rc = run_logits(o, ctx, n_vocab);
        llama_free(ctx);
        llama_model_free(model);
        llama_backend_free();
        return rc;
    }

    // Prompt: fixed pseudo-random ids (xorshift32), the same for a given seed and vocabulary.
    std::vector<llama_token> prompt(o.prompt_tokens);
    uint32_t x = o.seed * 2654435761u + 1;
    for (auto & t : prompt) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        t = (llama_token) (x % (uint32_t) n_vocab);
    }

    llama_memory_t mem = llama_get_memory(ctx);
    llama_batch pb = llama_batch_init(o.prompt_tokens, 0, 1);
    auto process_prompt = [&]() {
        fill_batch(pb, prompt.data(), o.prompt_tokens, 0, false);
        double t0 = now_s();
        decode_or_die(ctx, pb, "prompt");
        llama_synchronize(ctx);  // llama_decode may return before a GPU backend has finished the batch
        return now_s() - t0;
    };
    // The first run right after loading (shader compilation included); --prompt-runs: again from an
    // empty cache.
    const double t_prompt = process_prompt();
    std::vector<double> prompt_runs{o.prompt_tokens / t_prompt};
    for (int r = 1; r < o.prompt_runs; r++) {
        llama_memory_clear(mem, true);
        prompt_runs.push_back(o.prompt_tokens / process_prompt());
    }
    const llama_token first = argmax(llama_get_logits_ith(ctx, -1), n_vocab);

    llama_batch db = llama_batch_init(1, 0, 1);
    std::vector<double> runs;
    std::vector<llama_token> generated, first_run;
    for (int r = 0; r < o.reps; r++) {
        // Back to the state right after the prompt. Recurrent memories cannot drop a suffix: those
        // are cleared and the prompt is processed again (not timed).
        if (!llama_memory_seq_rm(mem, 0, o.prompt_tokens, -1)) {
            llama_memory_clear(mem, true);
            process_prompt();
        }
        llama_token tok = first;
        generated.assign(1, first);
        double t0 = now_s();
        for (int i = 0; i < o.decode_tokens; i++) {
            fill_batch(db, &tok, 1, o.prompt_tokens + i, true);
            decode_or_die(ctx, db, "decode");
            tok = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
            generated.push_back(tok);
        }
        runs.push_back(o.decode_tokens / (now_s() - t0));
        if (r == 0) first_run = generated;
        else if (generated != first_run) fprintf(stderr, "llama_peer: warning: repetition %d decoded other tokens than the first\n", r);
    }
    llama_batch_free(db);
    llama_batch_free(pb);

    const double prompt_tok_s = o.prompt_tokens / t_prompt;
    const double decode_med = median(runs);
    const uint64_t rss = rss_peak_bytes();
    char desc[256] = {0};
    llama_model_desc(model, desc, sizeof desc);

    if (o.json) {
        std::string r;
        for (size_t i = 0; i < runs.size(); i++) {
            char buf[32];
            snprintf(buf, sizeof buf, "%s%.4f", i ? "," : "", runs[i]);
            r += buf;
        }
        std::string g, pr;
        for (size_t i = 0; i < generated.size(); i++) g += (i ? "," : "") + std::to_string(generated[i]);
        for (size_t i = 0; i < prompt_runs.size(); i++) {
            char buf[32];
            snprintf(buf, sizeof buf, "%s%.4f", i ? "," : "", prompt_runs[i]);
            pr += buf;
        }
        printf("{\"engine\":\"llama.cpp\",\"version\":\"v0.5.0\",\"model\":\"%s\",\"model_desc\":\"%s\","
               "\"model_bytes\":%llu,\"model_params\":%llu,\"threads\":%d,\"mmap\":%s,\"repack\":%s,"
               "\"lazy\":\"%s\",\"flash_attn\":\"%s\",\"kv_type\":\"%s\",\"n_ubatch\":%u,\"load_s\":%.4f,"
               "\"prompt_tokens\":%d,\"prompt_tok_s\":%.4f,\"prompt_tok_s_runs\":[%s],\"decode_tokens\":%d,"
               "\"decode_tok_s_median\":%.4f,\"decode_tok_s_runs\":[%s],\"greedy_tokens\":[%s],\"rss_peak_bytes\":%llu,"
               "\"system_info\":\"%s\",\"n_gpu_layers\":%d,\"cpu_moe\":%s}\n",
               json_escape(o.model).c_str(), json_escape(desc).c_str(), (unsigned long long) st.st_size,
               (unsigned long long) llama_model_n_params(model), o.threads, o.mmap ? "true" : "false",
               o.repack ? "true" : "false", o.lazy.c_str(), o.flash_attn ? "auto" : "off", o.kv_type.c_str(), cp.n_ubatch, t_load,
               o.prompt_tokens, prompt_tok_s, pr.c_str(), o.decode_tokens, decode_med, r.c_str(), g.c_str(),
               (unsigned long long) rss, json_escape(llama_print_system_info()).c_str(), o.n_gpu_layers,
               o.cpu_moe ? "true" : "false");
    } else {
        printf("llama.cpp v0.5.0  %s  (%s, %.1f MiB, %d threads, mmap %s, repack %s)\n", o.model.c_str(), desc,
               st.st_size / 1048576.0, o.threads, o.mmap ? "on" : "off", o.repack ? "on" : "off");
        printf("load     %.3f s\n", t_load);
        printf("prompt   %d tokens  %.2f tok/s\n", o.prompt_tokens, prompt_tok_s);
        printf("decode   %d tokens  median %.2f tok/s  runs", o.decode_tokens, decode_med);
        for (double v : runs) printf(" %.2f", v);
        printf("\nrss peak %.1f MiB\n", rss / 1048576.0);
        printf("greedy   ");
        for (size_t i = 0; i < generated.size() && i < 16; i++) printf("%d ", generated[i]);
        printf("%s\n", generated.size() > 16 ? "..." : "");
    }

    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
