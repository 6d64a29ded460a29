// SOCKS5 UDP request header: parse_udp_header / encode_udp_header.
#include "fuzz_common.hpp"
#include "protocol/socks5.hpp"

#include <array>
#include <cstring>

namespace s5 = cs::protocol::socks5;
using namespace cs::fuzz;
using cs::core::socks_errc;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  s5::udp_header h;
  const auto eq = [](const s5::udp_header& a, const s5::udp_header& b) { return a.frag == b.frag && a.dst == b.dst; };
  const auto r = check_prefixes(
      data, size, s5::max_udp_header_size,
      [](cs::core::byte_view in, s5::udp_header& o) { return s5::parse_udp_header(in, o); }, eq, h);
  if (r.status == parse_status::error) {
    FUZZ_CHECK(size >= 4);
    FUZZ_CHECK(r.ec == socks_errc::address_type_not_supported || r.ec == socks_errc::bad_domain);
  }
  if (r.status != parse_status::done) {
    return 0;
  }
  FUZZ_CHECK(r.consumed == 3 + socks5_address_length(data, 3));
  FUZZ_CHECK(h.frag == data[2]);

  std::array<std::uint8_t, s5::max_udp_header_size> out{};
  const auto n = s5::encode_udp_header(h.dst, out);
  FUZZ_CHECK(n > 0);
  s5::udp_header again;
  const auto r2 = s5::parse_udp_header(cs::core::byte_view(out.data(), n), again);
  FUZZ_CHECK(r2.is_done() && r2.consumed == n);
  FUZZ_CHECK(again.frag == 0 && same_target(again.dst, h.dst));
  FUZZ_CHECK(out[0] == 0 && out[1] == 0 && out[2] == 0);
  const bool mapped = h.dst.ip_address() != nullptr && h.dst.ip_address()->is_v6() &&
                      h.dst.ip_address()->to_v6().is_v4_mapped();
  if (!mapped) {
    FUZZ_CHECK(n == r.consumed);
    FUZZ_CHECK(std::memcmp(out.data() + 3, data + 3, n - 3) == 0);
  }
  FUZZ_CHECK(s5::encode_udp_header(h.dst, cs::core::byte_span(out.data(), n - 1)) == 0);
  return 0;
}
