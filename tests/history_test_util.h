// Shared by the history tests: per-process temporary database paths (ctest runs tests in parallel).
#pragma once
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace sluice::history::test {

inline std::string tmp_dir() {
    const char* t = std::getenv("SLUICE_TMP");
    const std::string d = std::string(t ? t : "/tmp/sluice-test") + "/history";
    std::filesystem::create_directories(d);
    return d;
}

// A fresh path (any old file and its -wal/-shm removed).
inline std::string tmp_db(std::string name) {
    for (char& c : name)
        if (c == '/') c = '_';  // parameterised test names
    const std::string p = tmp_dir() + "/" + name + "-" + std::to_string(getpid()) + ".db";
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(p + suffix);
    return p;
}

inline std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace sluice::history::test
