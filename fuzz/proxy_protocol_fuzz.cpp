// PROXY protocol v1/v2 headers (listener side): protocol::proxy::parse;
// round trip through encode_v1 / encode_v2.
//
// Invariants, besides check_prefixes (both versions allowed):
//  - allowing one version only gives the same result for that version's
//    signature and bad_version for the other's; allowing none refuses all;
//  - v1: "PROXY " ... first CRLF at the end, at most 107 bytes; a TCP4/TCP6
//    line is exactly five single-space-separated fields, its addresses are
//    textual IPs (no NUL, no "%scope": what inet_ntop writes) of the
//    family the line names; UNKNOWN carries no address;
//  - v2: exactly 16 + LEN bytes, at most max_v2_size; addresses only for
//    PROXY + TCP over IPv4/IPv6, with the bytes the header carries;
//  - a header with addresses re-encodes (same version and the other one)
//    and re-parses to the same (unmapped) endpoints.
#include "fuzz_common.hpp"
#include "protocol/proxy_protocol.hpp"

#include <array>
#include <cstring>
#include <string_view>

namespace pp = cs::protocol::proxy;
namespace core = cs::core;
using namespace cs::fuzz;
using cs::core::socks_errc;

namespace {

bool same_header(const pp::header& a, const pp::header& b) {
  return a.ver == b.ver && a.source == b.source && a.destination == b.destination;
}

core::ip::tcp::endpoint unmapped(const core::ip::tcp::endpoint& e) {
  return {core::unmap(e.address()), e.port()};
}

bool same_result(const parse_result& a, const parse_result& b) {
  return a.status == b.status && a.consumed == b.consumed && a.ec == b.ec;
}

bool is_bad_version(const parse_result& r) { return r.is_error() && r.ec == socks_errc::bad_version; }

bool address_chars(std::string_view s) {
  for (const char c : s) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex && c != '.' && c != ':') {
      return false;
    }
  }
  return !s.empty();
}

void check_v1(const std::uint8_t* data, const parse_result& r, const pp::header& h) {
  const std::string_view text(reinterpret_cast<const char*>(data), r.consumed);
  FUZZ_CHECK(r.consumed <= pp::max_v1_size);
  FUZZ_CHECK(text.starts_with("PROXY "));
  FUZZ_CHECK(text.find("\r\n") == r.consumed - 2);
  FUZZ_CHECK(h.source.has_value() == h.destination.has_value());
  const std::string_view line = text.substr(6, text.size() - 8);
  if (!h.source) {
    FUZZ_CHECK(line.starts_with("UNKNOWN"));
    FUZZ_CHECK(line.size() == 7 || line[7] == ' ');
    return;
  }
  std::string_view f[5];
  std::size_t n = 0;
  std::size_t pos = 0;
  while (n < 5) {
    const auto sp = line.find(' ', pos);
    f[n++] = line.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
    if (sp == std::string_view::npos) {
      pos = line.size() + 1;
      break;
    }
    pos = sp + 1;
  }
  // Exactly five fields and nothing after the last one (no trailing space).
  FUZZ_CHECK(n == 5 && pos == line.size() + 1);
  FUZZ_CHECK(f[0] == "TCP4" || f[0] == "TCP6");
  const bool v4 = f[0] == "TCP4";
  FUZZ_CHECK(h.source->address().is_v4() == v4 && h.destination->address().is_v4() == v4);
  FUZZ_CHECK(address_chars(f[1]) && address_chars(f[2]));
  if (!v4) {
    FUZZ_CHECK(h.source->address().to_v6().scope_id() == 0 && h.destination->address().to_v6().scope_id() == 0);
  }
  FUZZ_CHECK(f[3] == std::to_string(h.source->port()) && f[4] == std::to_string(h.destination->port()));
}

void check_v2(const std::uint8_t* data, const parse_result& r, const pp::header& h) {
  const std::size_t len = static_cast<std::size_t>(data[14]) << 8 | data[15];
  FUZZ_CHECK(r.consumed == 16 + len && r.consumed <= pp::max_v2_size);
  FUZZ_CHECK((data[12] >> 4) == 2);
  const unsigned cmd = data[12] & 0x0F;
  FUZZ_CHECK(cmd <= 1);
  FUZZ_CHECK(h.source.has_value() == h.destination.has_value());
  const bool tcp = cmd == 1 && ((data[13] == 0x11 && len >= 12) || (data[13] == 0x21 && len >= 36));
  FUZZ_CHECK(h.source.has_value() == tcp);
  if (!tcp) {
    return;
  }
  const std::uint8_t* body = data + 16;
  if (data[13] == 0x11) {
    FUZZ_CHECK(h.source->address().is_v4() && h.destination->address().is_v4());
    const auto s = h.source->address().to_v4().to_bytes();
    const auto d = h.destination->address().to_v4().to_bytes();
    FUZZ_CHECK(std::memcmp(s.data(), body, 4) == 0 && std::memcmp(d.data(), body + 4, 4) == 0);
    FUZZ_CHECK(h.source->port() == (body[8] << 8 | body[9]));
    FUZZ_CHECK(h.destination->port() == (body[10] << 8 | body[11]));
  } else {
    FUZZ_CHECK(h.source->address().is_v6() && h.destination->address().is_v6());
    const auto s = h.source->address().to_v6().to_bytes();
    const auto d = h.destination->address().to_v6().to_bytes();
    FUZZ_CHECK(std::memcmp(s.data(), body, 16) == 0 && std::memcmp(d.data(), body + 16, 16) == 0);
    FUZZ_CHECK(h.source->port() == (body[32] << 8 | body[33]));
    FUZZ_CHECK(h.destination->port() == (body[34] << 8 | body[35]));
  }
}

/// Re-encodes `h` in both versions; each re-parses to the same endpoints
/// (IPv4-mapped addresses are written as IPv4), unless the two addresses
/// are of different families once unmapped, which neither version can carry.
void check_round_trip(const pp::header& h) {
  const auto src = unmapped(*h.source);
  const auto dst = unmapped(*h.destination);
  const bool mixed = src.address().is_v4() != dst.address().is_v4();
  std::array<std::uint8_t, pp::max_v2_size> out{};
  for (const auto ver : {pp::version::v1, pp::version::v2}) {
    const std::size_t n = ver == pp::version::v1 ? pp::encode_v1(*h.source, *h.destination, out)
                                                 : pp::encode_v2(*h.source, *h.destination, out);
    if (mixed) {
      FUZZ_CHECK(n == 0);
      continue;
    }
    FUZZ_CHECK(n > 0);
    pp::header again;
    const auto r = pp::parse(core::byte_view(out.data(), n), again);
    FUZZ_CHECK(r.is_done() && r.consumed == n);
    FUZZ_CHECK(again.ver == ver);
    FUZZ_CHECK(again.source && again.destination);
    FUZZ_CHECK(*again.source == src && *again.destination == dst);
    // Too small an output buffer writes nothing.
    const std::size_t short_n = ver == pp::version::v1
                                    ? pp::encode_v1(*h.source, *h.destination, core::byte_span(out.data(), n - 1))
                                    : pp::encode_v2(*h.source, *h.destination, core::byte_span(out.data(), n - 1));
    FUZZ_CHECK(short_n == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pp::header h;
  const auto r = check_prefixes(
      data, size, pp::max_v2_size, [](core::byte_view in, pp::header& o) { return pp::parse(in, o); }, same_header,
      h);

  // One version allowed: the same result for that version's signature.
  pp::header h1;
  pp::header h2;
  pp::header h0;
  const auto r1 = pp::parse(view(data, size), h1, true, false);
  const auto r2 = pp::parse(view(data, size), h2, false, true);
  const auto r0 = pp::parse(view(data, size), h0, false, false);
  check_result(r1, size);
  check_result(r2, size);
  check_result(r0, size);
  if (size == 0) {
    FUZZ_CHECK(r.status == parse_status::need_more && r1.status == parse_status::need_more &&
               r2.status == parse_status::need_more);
    return 0;
  }
  FUZZ_CHECK(is_bad_version(r0));
  if (data[0] == 'P') {
    FUZZ_CHECK(same_result(r1, r) && is_bad_version(r2));
    if (r.is_done()) {
      FUZZ_CHECK(same_header(h1, h));
    }
  } else if (data[0] == 0x0D) {
    FUZZ_CHECK(same_result(r2, r) && is_bad_version(r1));
    if (r.is_done()) {
      FUZZ_CHECK(same_header(h2, h));
    }
  } else {
    FUZZ_CHECK(is_bad_version(r) && is_bad_version(r1) && is_bad_version(r2));
  }

  if (r.is_error()) {
    FUZZ_CHECK(r.ec == socks_errc::bad_version || r.ec == socks_errc::general_failure);
    return 0;
  }
  if (!r.is_done()) {
    return 0;
  }
  if (h.ver == pp::version::v1) {
    FUZZ_CHECK(data[0] == 'P');
    check_v1(data, r, h);
  } else {
    FUZZ_CHECK(data[0] == 0x0D && r.consumed >= 16);
    check_v2(data, r, h);
  }
  if (h.source) {
    check_round_trip(h);
  }
  return 0;
}
