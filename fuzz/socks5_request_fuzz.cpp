// SOCKS5 request (server side): parse_request; round trip via the client
// encoder encode_request.
#include "fuzz_common.hpp"
#include "protocol/socks5.hpp"

#include <array>
#include <cstring>

namespace s5 = cs::protocol::socks5;
using namespace cs::fuzz;
using cs::core::socks_errc;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  s5::request q;
  const auto eq = [](const s5::request& a, const s5::request& b) { return a.cmd == b.cmd && a.dst == b.dst; };
  const auto r = check_prefixes(
      data, size, s5::max_request_size, [](cs::core::byte_view in, s5::request& o) { return s5::parse_request(in, o); },
      eq, q);
  if (r.status == parse_status::error) {
    // Each error is reported for the right reason.
    FUZZ_CHECK(size > 0);
    if (r.ec == socks_errc::bad_version) {
      FUZZ_CHECK(data[0] != s5::version);
    } else if (r.ec == socks_errc::command_not_supported) {
      FUZZ_CHECK(size >= 2 && (data[1] < 1 || data[1] > 3));
    } else if (r.ec == socks_errc::address_type_not_supported) {
      FUZZ_CHECK(size >= 4 && data[3] != 1 && data[3] != 3 && data[3] != 4);
    } else {
      FUZZ_CHECK(r.ec == socks_errc::bad_domain);
      FUZZ_CHECK(size >= 5 && data[3] == 3);
      const std::size_t len = data[4];
      const std::size_t seen = std::min(size - 5, len);
      FUZZ_CHECK(len == 0 || !no_nul(data + 5, data + 5 + seen));
    }
  }
  if (r.status != parse_status::done) {
    return 0;
  }
  FUZZ_CHECK(r.consumed == 3 + socks5_address_length(data, 3));
  FUZZ_CHECK(static_cast<std::uint8_t>(q.cmd) == data[1]);
  FUZZ_CHECK(q.dst.port == static_cast<std::uint16_t>(data[r.consumed - 2] << 8 | data[r.consumed - 1]));
  if (const auto* d = q.dst.domain()) {
    FUZZ_CHECK(data[3] == 3 && !d->empty() && no_nul(data + 5, data + 5 + d->size()));
  }

  std::array<std::uint8_t, s5::max_request_size> out{};
  const auto n = s5::encode_request(q.cmd, q.dst, out);
  FUZZ_CHECK(n > 0);
  s5::request again;
  const auto r2 = s5::parse_request(cs::core::byte_view(out.data(), n), again);
  FUZZ_CHECK(r2.is_done() && r2.consumed == n);
  FUZZ_CHECK(again.cmd == q.cmd && same_target(again.dst, q.dst));
  const bool mapped = q.dst.ip_address() != nullptr && q.dst.ip_address()->is_v6() &&
                      q.dst.ip_address()->to_v6().is_v4_mapped();
  if (!mapped) {
    // Same bytes except RSV, which the encoder always writes as 0.
    FUZZ_CHECK(n == r.consumed);
    FUZZ_CHECK(out[2] == 0);
    FUZZ_CHECK(std::memcmp(out.data(), data, 2) == 0);
    FUZZ_CHECK(std::memcmp(out.data() + 3, data + 3, n - 3) == 0);
  } else {
    FUZZ_CHECK(n == 10);  // written as IPv4
  }
  FUZZ_CHECK(s5::encode_request(q.cmd, q.dst, cs::core::byte_span(out.data(), n - 1)) == 0);
  return 0;
}
