// SOCKS5 client side: the upstream's method selection, RFC 1929 status and
// reply (parse_method_selection, parse_auth_status, parse_reply). Each
// parser sees the same input.
#include "fuzz_common.hpp"
#include "protocol/socks5.hpp"

#include <array>
#include <cstring>

namespace s5 = cs::protocol::socks5;
using namespace cs::fuzz;
using cs::core::socks_errc;

namespace {
struct none {};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Method selection: VER METHOD.
  {
    s5::method m{};
    const auto r = check_prefixes(
        data, size, 2, [](cs::core::byte_view in, s5::method& o) { return s5::parse_method_selection(in, o); },
        [](s5::method a, s5::method b) { return a == b; }, m);
    if (r.is_done()) {
      FUZZ_CHECK(r.consumed == 2 && data[0] == s5::version && static_cast<std::uint8_t>(m) == data[1]);
      std::array<std::uint8_t, 2> out{};
      FUZZ_CHECK(s5::encode_method_selection(m, out) == 2 && std::memcmp(out.data(), data, 2) == 0);
    } else if (r.is_error()) {
      FUZZ_CHECK(data[0] != s5::version && r.ec == socks_errc::bad_version);
    }
  }
  // RFC 1929 status: VER STATUS.
  {
    none n;
    const auto r = check_prefixes(
        data, size, 2, [](cs::core::byte_view in, none&) { return s5::parse_auth_status(in); },
        [](none, none) { return true; }, n);
    if (r.is_done()) {
      FUZZ_CHECK(r.consumed == 2 && data[0] == 0x01 && data[1] == 0x00);
      std::array<std::uint8_t, 2> out{};
      FUZZ_CHECK(s5::encode_auth_status(true, out) == 2 && std::memcmp(out.data(), data, 2) == 0);
    } else if (r.is_error()) {
      FUZZ_CHECK((data[0] != 0x01 && r.ec == socks_errc::bad_version) ||
                 (size >= 2 && data[0] == 0x01 && data[1] != 0 && r.ec == socks_errc::auth_failed));
    }
  }
  // Reply: VER REP RSV ATYP BND.ADDR BND.PORT.
  {
    s5::reply rep;
    const auto eq = [](const s5::reply& a, const s5::reply& b) { return a.rep == b.rep && a.bnd == b.bnd; };
    const auto r = check_prefixes(
        data, size, s5::max_reply_size, [](cs::core::byte_view in, s5::reply& o) { return s5::parse_reply(in, o); },
        eq, rep);
    if (r.is_error()) {
      FUZZ_CHECK(r.ec == socks_errc::bad_version || r.ec == socks_errc::address_type_not_supported ||
                 r.ec == socks_errc::bad_domain);
      FUZZ_CHECK(r.ec != socks_errc::bad_version || data[0] != s5::version);
    }
    if (r.is_done()) {
      FUZZ_CHECK(r.consumed == 3 + socks5_address_length(data, 3));
      FUZZ_CHECK(static_cast<std::uint8_t>(rep.rep) == data[1]);
      if (const auto* ip = rep.bnd.ip_address()) {
        // The server-side encoder round-trips an IP BND.
        std::array<std::uint8_t, s5::max_reply_size> out{};
        const auto n = s5::encode_reply(rep.rep, *ip, rep.bnd.port, out);
        FUZZ_CHECK(n == 10 || n == 22);
        s5::reply again;
        const auto r2 = s5::parse_reply(cs::core::byte_view(out.data(), n), again);
        FUZZ_CHECK(r2.is_done() && r2.consumed == n);
        FUZZ_CHECK(again.rep == rep.rep && same_target(again.bnd, rep.bnd));
        if (!(ip->is_v6() && ip->to_v6().is_v4_mapped())) {
          FUZZ_CHECK(n == r.consumed && std::memcmp(out.data(), data, 2) == 0 &&
                     std::memcmp(out.data() + 3, data + 3, n - 3) == 0);
        }
        FUZZ_CHECK(s5::encode_reply(rep.rep, *ip, rep.bnd.port, cs::core::byte_span(out.data(), n - 1)) == 0);
      }
    }
  }
  return 0;
}
