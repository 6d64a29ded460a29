// SOCKS5 method-selection message (server side): parse_greeting.
#include "fuzz_common.hpp"
#include "protocol/socks5.hpp"

#include <array>

namespace s5 = cs::protocol::socks5;
using namespace cs::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  s5::greeting g;
  const auto eq = [](const s5::greeting& a, const s5::greeting& b) { return a.methods == b.methods; };
  const auto r = check_prefixes(
      data, size, s5::max_greeting_size, [](cs::core::byte_view in, s5::greeting& o) { return s5::parse_greeting(in, o); },
      eq, g);
  if (r.status == parse_status::error) {
    FUZZ_CHECK(size > 0 && data[0] != s5::version);
    FUZZ_CHECK(r.ec == cs::core::socks_errc::bad_version);
  }
  if (r.status == parse_status::need_more) {
    FUZZ_CHECK(size < 2 || size < 2 + std::size_t{data[1]});
  }
  if (r.status != parse_status::done) {
    return 0;
  }
  // Computed length and content.
  FUZZ_CHECK(r.consumed == 2 + std::size_t{data[1]});
  s5::greeting expect;
  for (std::size_t i = 2; i < r.consumed; ++i) {
    expect.methods.set(data[i]);
  }
  FUZZ_CHECK(g.methods == expect.methods);
  // Round trip through the client encoder when it can express the set.
  auto only = g.methods;
  only.reset(0x00);
  only.reset(0x02);
  const bool no_auth = g.offers(s5::method::no_auth);
  const bool user_pass = g.offers(s5::method::user_pass);
  if (only.none() && (no_auth || user_pass)) {
    std::array<std::uint8_t, 4> out{};
    const auto n = s5::encode_greeting(no_auth, user_pass, out);
    FUZZ_CHECK(n == 2u + (no_auth ? 1u : 0u) + (user_pass ? 1u : 0u));
    s5::greeting again;
    const auto r2 = s5::parse_greeting(cs::core::byte_view(out.data(), n), again);
    FUZZ_CHECK(r2.is_done() && r2.consumed == n && eq(again, g));
  }
  return 0;
}
