// RFC 1929 username/password request (server side): parse_auth_request.
#include "fuzz_common.hpp"
#include "protocol/socks5.hpp"

#include <array>
#include <cstring>
#include <string_view>

namespace s5 = cs::protocol::socks5;
using namespace cs::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  s5::auth_request a;
  const auto eq = [](const s5::auth_request& x, const s5::auth_request& y) {
    return x.username == y.username && x.password == y.password;
  };
  const auto r = check_prefixes(
      data, size, s5::max_auth_request_size,
      [](cs::core::byte_view in, s5::auth_request& o) { return s5::parse_auth_request(in, o); }, eq, a);
  if (r.status == parse_status::error) {
    FUZZ_CHECK(size > 0 && data[0] != s5::auth_version);
    FUZZ_CHECK(r.ec == cs::core::socks_errc::bad_version);
  }
  if (r.status != parse_status::done) {
    return 0;
  }
  const std::size_t ulen = data[1];
  const std::size_t plen = data[2 + ulen];
  FUZZ_CHECK(r.consumed == 3 + ulen + plen);
  FUZZ_CHECK(a.username.size() == ulen && a.password.size() == plen);
  FUZZ_CHECK(std::memcmp(a.username.data(), data + 2, ulen) == 0);
  FUZZ_CHECK(std::memcmp(a.password.data(), data + 3 + ulen, plen) == 0);

  // encode(parse(x)) == x, byte for byte.
  std::array<std::uint8_t, s5::max_auth_request_size> out{};
  const auto n = s5::encode_auth_request(std::string_view(a.username.data(), a.username.size()),
                                         std::string_view(a.password.data(), a.password.size()), out);
  FUZZ_CHECK(n == r.consumed);
  FUZZ_CHECK(std::memcmp(out.data(), data, n) == 0);
  // Too small a buffer is refused, never truncated.
  FUZZ_CHECK(s5::encode_auth_request(std::string_view(a.username.data(), a.username.size()),
                                     std::string_view(a.password.data(), a.password.size()),
                                     cs::core::byte_span(out.data(), n - 1)) == 0);
  return 0;
}
