// SOCKS4 reply (client side): parse_reply / encode_reply.
#include "fuzz_common.hpp"
#include "protocol/socks4.hpp"

#include <array>
#include <cstring>

namespace s4 = cs::protocol::socks4;
using namespace cs::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  s4::reply rep;
  const auto eq = [](const s4::reply& a, const s4::reply& b) {
    return a.granted == b.granted && a.code == b.code && a.addr == b.addr && a.port == b.port;
  };
  const auto r = check_prefixes(
      data, size, s4::reply_size, [](cs::core::byte_view in, s4::reply& o) { return s4::parse_reply(in, o); }, eq,
      rep);
  if (r.is_error()) {
    FUZZ_CHECK(data[0] != s4::reply_version && r.ec == cs::core::socks_errc::bad_version);
  }
  if (!r.is_done()) {
    return 0;
  }
  FUZZ_CHECK(r.consumed == s4::reply_size);
  FUZZ_CHECK(rep.code == data[1] && rep.granted == (data[1] == 0x5A));
  std::array<std::uint8_t, s4::reply_size> out{};
  const auto n = s4::encode_reply(static_cast<cs::core::socks4_reply>(rep.code), rep.addr, rep.port, out);
  FUZZ_CHECK(n == s4::reply_size && std::memcmp(out.data(), data, n) == 0);
  FUZZ_CHECK(s4::encode_reply(static_cast<cs::core::socks4_reply>(rep.code), rep.addr, rep.port,
                              cs::core::byte_span(out.data(), n - 1)) == 0);
  return 0;
}
