// Unicode helpers for the BERT tokenizer, with the character classes Hugging Face's
// tokenizers (Rust) uses. Categories and decompositions come from utf8proc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tlm::unicode {

// Decodes one code point at s[i], advancing i; an invalid sequence yields U+FFFD and skips
// one byte (as a lossy UTF-8 decoder does).
char32_t decode(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t c);
// True if s is valid UTF-8; else sets *bad_offset to the first bad byte.
bool valid_utf8(std::string_view s, size_t* bad_offset = nullptr);

bool is_whitespace(char32_t c);       // Rust char::is_whitespace (White_Space) plus \t \n \r
bool is_control(char32_t c);          // categories Cc Cf Co Cs, except \t \n \r (Cn is kept, as HF)
bool is_punctuation(char32_t c);      // ASCII punctuation or category P*
bool is_cjk(char32_t c);              // CJK ideograph blocks that BERT pads with spaces
bool is_nonspacing_mark(char32_t c);  // category Mn

// Canonical decomposition (NFD) of a sequence of code points, with canonical ordering.
void nfd(const std::vector<char32_t>& in, std::vector<char32_t>& out);
// Lowercase mapping of one code point, as Rust's char::to_lowercase (U+0130 -> "i\u0307").
void to_lower(char32_t c, std::vector<char32_t>& out);

}  // namespace tlm::unicode
