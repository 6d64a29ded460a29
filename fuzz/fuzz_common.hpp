#pragma once
// Shared invariants for the parser fuzz targets.
//
// Every target asserts properties, not just "does not crash":
//  - consumed <= input size; consumed > 0 exactly when done; ec set exactly
//    on error;
//  - prefix monotonicity (the parsers are stateless and re-parse from the
//    start of the accumulated bytes): over growing prefixes the status goes
//    need_more... then either done(n) with the same n and value for every
//    longer prefix, or error(e) with the same e for every longer prefix.
//    This is "the same result when fed in two pieces";
//  - the message is prefix-closed: parsing exactly its n bytes gives done(n);
//  - encode(parse(x)) re-parses to the same value, and the target checks the
//    message's computed length against `consumed`.
//
// FUZZ_CHECK aborts with a message, so libFuzzer and the corpus replay both
// report the failing input.

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "protocol/parse_result.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#define FUZZ_CHECK(cond)                                                                     \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)

/// Unconditional failure with a message (for "cannot happen" branches).
#define FUZZ_FAIL(msg)                                                      \
  do {                                                                      \
    std::fprintf(stderr, "%s:%d: FUZZ_FAIL: %s\n", __FILE__, __LINE__, msg); \
    std::abort();                                                           \
  } while (false)

namespace cs::fuzz {

using protocol::parse_result;
using protocol::parse_status;

inline core::byte_view view(const std::uint8_t* data, std::size_t size) { return {data, size}; }

/// Basic well-formedness of one result for an input of `size` bytes.
inline void check_result(const parse_result& r, std::size_t size) {
  FUZZ_CHECK(r.consumed <= size);
  switch (r.status) {
    case parse_status::done:
      FUZZ_CHECK(r.consumed > 0);
      FUZZ_CHECK(!r.ec);
      break;
    case parse_status::need_more:
      FUZZ_CHECK(r.consumed == 0);
      FUZZ_CHECK(!r.ec);
      break;
    case parse_status::error:
      FUZZ_CHECK(r.consumed == 0);
      FUZZ_CHECK(static_cast<bool>(r.ec));
      break;
  }
}

/// Checks the prefix properties described above for parser `parse(view,
/// Out&)` and value equality `eq(a, b)`. Prefixes are checked up to `cap`
/// bytes (the message size limit plus slack); returns the result for the
/// whole input and stores its value in `full`.
template <typename Out, typename Parse, typename Eq>
parse_result check_prefixes(const std::uint8_t* data, std::size_t size, std::size_t cap, Parse parse, Eq eq,
                            Out& full) {
  const parse_result whole = parse(view(data, size), full);
  check_result(whole, size);

  const std::size_t limit = std::min(size, cap);
  bool settled = false;
  parse_result first{};
  Out first_value{};
  for (std::size_t k = 0; k <= limit; ++k) {
    Out v{};
    const parse_result r = parse(view(data, k), v);
    check_result(r, k);
    if (!settled) {
      if (r.status != parse_status::need_more) {
        settled = true;
        first = r;
        first_value = v;
      }
      continue;
    }
    // Once settled, every longer prefix gives the same outcome.
    FUZZ_CHECK(r.status == first.status);
    FUZZ_CHECK(r.consumed == first.consumed);
    FUZZ_CHECK(r.ec == first.ec);
    if (r.status == parse_status::done) {
      FUZZ_CHECK(eq(v, first_value));
    }
  }
  if (settled) {
    // The whole input agrees with the prefixes.
    FUZZ_CHECK(whole.status == first.status);
    FUZZ_CHECK(whole.consumed == first.consumed);
    FUZZ_CHECK(whole.ec == first.ec);
    if (whole.status == parse_status::done) {
      FUZZ_CHECK(eq(full, first_value));
    }
  } else {
    // The parser never settled within the cap (the protocol's maximum
    // message size): legitimate only while the input is shorter than that.
    FUZZ_CHECK(size < cap);
    FUZZ_CHECK(whole.status == parse_status::need_more);
  }
  if (whole.status == parse_status::done) {
    // Prefix-closed: the message alone parses, to the same value, and a
    // reused (dirty) output object does not change the result.
    Out alone{};
    const parse_result r = parse(view(data, whole.consumed), alone);
    FUZZ_CHECK(r.status == parse_status::done && r.consumed == whole.consumed);
    FUZZ_CHECK(eq(alone, full));
    Out dirty = full;
    const parse_result r2 = parse(view(data, whole.consumed), dirty);
    FUZZ_CHECK(r2.status == parse_status::done && eq(dirty, full));
  }
  return whole;
}

/// Target equality where an IPv4-mapped IPv6 address equals its IPv4 form
/// (encoders write mapped addresses as IPv4).
inline bool same_target(const core::target_address& a, const core::target_address& b) {
  if (a.port != b.port || a.is_domain() != b.is_domain()) {
    return false;
  }
  if (a.is_domain()) {
    return *a.domain() == *b.domain();
  }
  return core::unmap(*a.ip_address()) == core::unmap(*b.ip_address());
}

/// SOCKS5 ATYP+ADDR+PORT length at data[off], assuming it parsed.
inline std::size_t socks5_address_length(const std::uint8_t* data, std::size_t off) {
  switch (data[off]) {
    case 0x01: return 1 + 4 + 2;
    case 0x04: return 1 + 16 + 2;
    case 0x03: return 1 + 1 + std::size_t{data[off + 1]} + 2;
    default: FUZZ_FAIL("unknown ATYP parsed");
  }
  return 0;
}

/// True when no byte in [first, last) is NUL.
inline bool no_nul(const std::uint8_t* first, const std::uint8_t* last) {
  return std::find(first, last, 0) == last;
}

}  // namespace cs::fuzz
