// SOCKS4/4a request (server side): parse_request; round trip via the client
// encoder encode_request.
#include "fuzz_common.hpp"
#include "protocol/socks4.hpp"

#include <array>
#include <cstring>
#include <string_view>

namespace s4 = cs::protocol::socks4;
using namespace cs::fuzz;
using cs::core::socks_errc;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  s4::request q;
  const auto eq = [](const s4::request& a, const s4::request& b) {
    return a.cmd == b.cmd && a.dst == b.dst && a.userid == b.userid && a.socks4a == b.socks4a;
  };
  const auto r = check_prefixes(
      data, size, s4::max_request_size,
      [](cs::core::byte_view in, s4::request& o) { return s4::parse_request(in, o); }, eq, q);
  if (r.is_error()) {
    if (r.ec == socks_errc::bad_version) {
      FUZZ_CHECK(data[0] != s4::version);
    } else if (r.ec == socks_errc::command_not_supported) {
      FUZZ_CHECK(size >= 2 && data[1] != 1 && data[1] != 2);
    } else if (r.ec == socks_errc::field_too_long) {
      FUZZ_CHECK(size > 8 + s4::max_field);
    } else {
      FUZZ_CHECK(r.ec == socks_errc::bad_domain);
    }
  }
  if (!r.is_done()) {
    return 0;
  }
  // Computed length: header, USERID NUL, and for 4a HOSTNAME NUL.
  const std::size_t ulen = q.userid.size();
  std::size_t expect = 8 + ulen + 1;
  const bool is_4a = data[4] == 0 && data[5] == 0 && data[6] == 0 && data[7] != 0;
  FUZZ_CHECK(q.socks4a == is_4a);
  FUZZ_CHECK(ulen <= s4::max_field && data[8 + ulen] == 0 && no_nul(data + 8, data + 8 + ulen));
  if (is_4a) {
    const auto* d = q.dst.domain();
    FUZZ_CHECK(d != nullptr && !d->empty() && d->size() <= s4::max_field);
    FUZZ_CHECK(data[expect + d->size()] == 0 && no_nul(data + expect, data + expect + d->size()));
    expect += d->size() + 1;
  } else {
    FUZZ_CHECK(q.dst.ip_address() != nullptr && q.dst.ip_address()->is_v4());
  }
  FUZZ_CHECK(r.consumed == expect);
  FUZZ_CHECK(q.dst.port == static_cast<std::uint16_t>(data[2] << 8 | data[3]));

  std::array<std::uint8_t, s4::max_request_size> out{};
  const std::string_view userid(q.userid.data(), q.userid.size());
  const auto n = s4::encode_request(q.cmd, q.dst, userid, out);
  FUZZ_CHECK(n == r.consumed);
  s4::request again;
  const auto r2 = s4::parse_request(cs::core::byte_view(out.data(), n), again);
  FUZZ_CHECK(r2.is_done() && r2.consumed == n && eq(again, q));
  // Same bytes, except that a 4a DSTIP 0.0.0.x is written as 0.0.0.1.
  FUZZ_CHECK(std::memcmp(out.data(), data, 7) == 0);
  FUZZ_CHECK(out[7] == (is_4a ? 1 : data[7]));
  FUZZ_CHECK(std::memcmp(out.data() + 8, data + 8, n - 8) == 0);
  FUZZ_CHECK(s4::encode_request(q.cmd, q.dst, userid, cs::core::byte_span(out.data(), n - 1)) == 0);
  return 0;
}
