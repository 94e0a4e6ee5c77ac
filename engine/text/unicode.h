// UTF-8 helpers and Unicode NFC, as the tokenizer needs them.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::text {

// Length of the UTF-8 sequence that starts with lead byte c (1 for an invalid lead byte).
inline int utf8_len(uint8_t c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}

void append_utf8(std::string& out, uint32_t cp);

// Decodes one well-formed code point at s[i], advancing i. Returns -1 (and advances i by one byte)
// on an ill-formed sequence: bad lead, bad continuation, overlong, surrogate or > U+10FFFF.
int32_t next_cp(std::string_view s, size_t& i);

// Bytes of the longest prefix of s that ends on a complete sequence; an incomplete but still
// possible sequence at the end is left out (a streaming decoder holds it back).
size_t utf8_complete_prefix(std::string_view s);

// s with every ill-formed byte sequence replaced by U+FFFD (like Rust's from_utf8_lossy).
std::string utf8_sanitize(std::string_view s);
bool utf8_valid(std::string_view s);

// Canonical composition (NFC) of valid UTF-8. Pure-ASCII and already-NFC text below U+0300 is
// returned untouched without decoding.
std::string nfc(std::string_view s);

}  // namespace sluice::text
