// Typed access to GGUF metadata and tensors, and printing of values. Errors name the key, the file
// and what was found, since a wrong type here usually means a converter wrote something unexpected.
#include <cmath>
#include <cstdio>

#include "engine/gguf/gguf.h"

namespace sluice::gguf {

const char* value_type_name(ValueType t) {
    static const char* const names[] = {"uint8", "int8",   "uint16", "int16", "uint32",
                                        "int32", "float32", "bool",  "string", "array",
                                        "uint64", "int64", "float64"};
    uint32_t i = uint32_t(t);
    return i < std::size(names) ? names[i] : "unknown";
}

std::string describe_type(const Value& v) {
    if (v.type == ValueType::ARRAY) {
        if (auto* a = std::get_if<Array>(&v.v))
            return "an array of " + std::to_string(a->items.size()) + " " +
                   (a->type == ValueType::STRING  ? "strings"
                    : a->type == ValueType::ARRAY ? "arrays"
                                                  : value_type_name(a->type));
    }
    std::string name = value_type_name(v.type);
    bool vowel = name[0] == 'i' || name[0] == 'a' || (name[0] == 'u' && name[1] == 'n');
    return (vowel ? "an " : "a ") + name;
}

namespace {

std::string number(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", x);
    return buf;
}

std::string quoted(const std::string& s, size_t max_chars) {
    std::string out = "\"";
    for (size_t i = 0; i < s.size() && i < max_chars; ++i) {
        unsigned char ch = static_cast<unsigned char>(s[i]);
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += char(ch);
        } else if (ch == '\n') {
            out += "\\n";
        } else if (ch < 0x20 || ch == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", ch);
            out += buf;
        } else {
            out += char(ch);  // UTF-8 passes through
        }
    }
    if (s.size() > max_chars) out += "...";
    return out + "\"";
}

}  // namespace

std::string describe(const Value& v, size_t max_items) {
    return std::visit(
        [&](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, uint64_t> || std::is_same_v<T, int64_t>) {
                return std::to_string(x);
            } else if constexpr (std::is_same_v<T, double>) {
                return number(x);
            } else if constexpr (std::is_same_v<T, bool>) {
                return x ? "true" : "false";
            } else if constexpr (std::is_same_v<T, std::string>) {
                return quoted(x, 200);
            } else {
                std::string s = "[";
                for (size_t i = 0; i < x.items.size() && i < max_items; ++i)
                    s += (i ? ", " : "") + describe(x.items[i], max_items);
                if (x.items.size() > max_items)
                    s += ", ... (" + std::to_string(x.items.size()) + " items)";
                return s + "]";
            }
        },
        v.v);
}

// ---- typed getters --------------------------------------------------------------------------------

namespace {

[[noreturn]] void wrong(const std::string& path, std::string_view key, const std::string& found,
                        const char* expected) {
    throw Error("key '" + std::string(key) + "' in " + path + " is " + found + "; expected " +
                expected);
}

// Integer values as int128 so that both getters can range-check without sign games.
bool as_integer(const Value& v, __int128& out) {
    if (auto* u = std::get_if<uint64_t>(&v.v)) return out = *u, true;
    if (auto* i = std::get_if<int64_t>(&v.v)) return out = *i, true;
    return false;
}

std::string found_number(const Value& v) {
    return describe(v) + " (" + value_type_name(v.type) + ")";
}

const Value& required(const File& f, std::string_view key) {
    const Value* v = f.find(key);
    if (!v) throw Error(f.path() + ": missing required key '" + std::string(key) + "'");
    return *v;
}

}  // namespace

uint64_t File::get_uint(std::string_view key) const {
    const Value* v = &required(*this, key);
    __int128 x;
    if (!as_integer(*v, x)) wrong(path_, key, describe_type(*v), "an integer");
    if (x < 0) wrong(path_, key, found_number(*v), "a non-negative integer");
    return uint64_t(x);
}

int64_t File::get_int(std::string_view key) const {
    const Value* v = &required(*this, key);
    __int128 x;
    if (!as_integer(*v, x)) wrong(path_, key, describe_type(*v), "an integer");
    if (x > INT64_MAX) wrong(path_, key, found_number(*v), "an integer that fits int64");
    return int64_t(x);
}

double File::get_float(std::string_view key) const {
    const Value* v = &required(*this, key);
    if (auto* d = std::get_if<double>(&v->v)) return *d;
    __int128 x;
    if (!as_integer(*v, x)) wrong(path_, key, describe_type(*v), "a number");
    return double(x);
}

bool File::get_bool(std::string_view key) const {
    const Value* v = &required(*this, key);
    if (auto* b = std::get_if<bool>(&v->v)) return *b;
    wrong(path_, key, describe_type(*v), "a bool");
}

const std::string& File::get_string(std::string_view key) const {
    const Value* v = &required(*this, key);
    if (auto* s = std::get_if<std::string>(&v->v)) return *s;
    wrong(path_, key, describe_type(*v), "a string");
}

const Array& File::get_array(std::string_view key) const {
    const Value* v = &required(*this, key);
    if (auto* a = std::get_if<Array>(&v->v)) return *a;
    wrong(path_, key, describe_type(*v), "an array");
}

uint64_t File::get_uint_or(std::string_view key, uint64_t def) const {
    return find(key) ? get_uint(key) : def;
}
double File::get_float_or(std::string_view key, double def) const {
    return find(key) ? get_float(key) : def;
}
bool File::get_bool_or(std::string_view key, bool def) const {
    return find(key) ? get_bool(key) : def;
}
std::string File::get_string_or(std::string_view key, std::string def) const {
    return find(key) ? get_string(key) : def;
}

std::vector<std::string> File::get_string_array(std::string_view key) const {
    const Array& a = get_array(key);
    if (a.type != ValueType::STRING) wrong(path_, key, describe_type(*find(key)), "an array of strings");
    std::vector<std::string> out;
    out.reserve(a.items.size());
    for (const Value& x : a.items) out.push_back(std::get<std::string>(x.v));
    return out;
}

std::vector<int64_t> File::get_int_array(std::string_view key) const {
    const Array& a = get_array(key);
    std::vector<int64_t> out;
    out.reserve(a.items.size());
    for (size_t i = 0; i < a.items.size(); ++i) {
        __int128 x;
        if (!as_integer(a.items[i], x))
            wrong(path_, key, describe_type(*find(key)), "an array of integers");
        if (x > INT64_MAX)
            wrong(path_, key, "an array whose element " + std::to_string(i) + " is " +
                                  found_number(a.items[i]),
                  "integers that fit int64");
        out.push_back(int64_t(x));
    }
    return out;
}

std::vector<double> File::get_float_array(std::string_view key) const {
    const Array& a = get_array(key);
    std::vector<double> out;
    out.reserve(a.items.size());
    for (const Value& item : a.items) {
        __int128 x;
        if (auto* d = std::get_if<double>(&item.v))
            out.push_back(*d);
        else if (as_integer(item, x))
            out.push_back(double(x));
        else
            wrong(path_, key, describe_type(*find(key)), "an array of numbers");
    }
    return out;
}

const TensorInfo& File::require_tensor(std::string_view name,
                                       std::initializer_list<int64_t> shape) const {
    const TensorInfo* t = find_tensor(name);
    if (!t) throw Error(path_ + ": missing tensor '" + std::string(name) + "'");
    // Compare over 4 dims with 1s filled in, so (n, 1) matches (n).
    int64_t want[4] = {1, 1, 1, 1};
    bool fits = shape.size() <= 4;
    size_t d = 0;
    for (int64_t x : shape) {
        if (d < 4) want[d] = x;
        ++d;
    }
    for (int i = 0; i < 4 && fits; ++i) fits = t->ne[i] == want[i];
    if (!fits) {
        std::string expected = "(";
        d = 0;
        for (int64_t x : shape) expected += (d++ ? ", " : "") + std::to_string(x);
        throw Error("tensor '" + std::string(name) + "' in " + path_ + " has shape " +
                    shape_string(*t) + "; expected " + expected + ")");
    }
    return *t;
}

}  // namespace sluice::gguf
