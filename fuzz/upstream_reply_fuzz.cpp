// Upstream replies, as CleverSocks' upstream client (upstream/proxy_client.cpp)
// reads them: the same input is
//  1. a SOCKS5 exchange: method selection, the RFC 1929 status when the
//     upstream chose username/password, then the reply -- read the way the
//     client reads it (5 bytes, then exactly the rest the ATYP/length says,
//     into a max_reply_size buffer: a domain length >= 0x80 or an unknown ATYP
//     must never make it read past the buffer or past the message);
//  2. a SOCKS4 reply;
//  3. an HTTP CONNECT response head (bounded by max_response_head; also fed
//     in the client's growing chunks, and repeated past the bound).
// protocol::socks5::parse_{method_selection,auth_status,reply},
// protocol::socks4::parse_reply, protocol::http_connect::parse_response.
#include "fuzz_common.hpp"
#include "protocol/http_connect.hpp"
#include "protocol/socks4.hpp"
#include "protocol/socks5.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

namespace s5 = cs::protocol::socks5;
namespace s4 = cs::protocol::socks4;
namespace hc = cs::protocol::http_connect;
using namespace cs::fuzz;
using cs::core::socks_errc;

namespace {

struct none {};

// The client's SOCKS5 reply read (proxy_client.cpp socks5()): returns the
// bytes it would consume, or 0 for an error / not enough input.
std::size_t client_reads_reply(const std::uint8_t* data, std::size_t size) {
  std::array<std::uint8_t, s5::max_reply_size> in{};
  if (size < 5) {
    return 0;  // EOF before the first 5 bytes: truncated
  }
  std::memcpy(in.data(), data, 5);
  s5::reply rep;
  auto r = s5::parse_reply({in.data(), 5}, rep);
  check_result(r, 5);
  std::size_t have = 5;
  if (r.status == parse_status::need_more) {
    std::size_t total = 0;
    switch (in[3]) {
      case 0x01: total = 4 + 4 + 2; break;
      case 0x04: total = 4 + 16 + 2; break;
      case 0x03: total = 4 + 1 + std::size_t{in[4]} + 2; break;
      default: FUZZ_CHECK(!"need_more with an unknown ATYP");
    }
    // The read must fit the buffer, whatever the length byte says.
    FUZZ_CHECK(total <= in.size());
    if (total > have) {
      if (size < total) {
        return 0;  // truncated
      }
      std::memcpy(in.data() + have, data + have, total - have);
      have = total;
    }
    r = s5::parse_reply({in.data(), have}, rep);
    check_result(r, have);
  }
  if (!r.is_done()) {
    FUZZ_CHECK(r.is_error());  // with the exact length in hand it cannot want more
    return 0;
  }
  FUZZ_CHECK(r.consumed == have);  // never less than read: nothing left unparsed in the reply
  return have;
}

void socks5_exchange(const std::uint8_t* data, std::size_t size) {
  std::size_t off = 0;
  s5::method m{};
  const auto mr = check_prefixes(
      data, size, 2, [](cs::core::byte_view in, s5::method& o) { return s5::parse_method_selection(in, o); },
      [](s5::method a, s5::method b) { return a == b; }, m);
  if (!mr.is_done()) {
    FUZZ_CHECK(!mr.is_error() || (data[0] != s5::version && mr.ec == socks_errc::bad_version));
    return;
  }
  FUZZ_CHECK(mr.consumed == 2 && static_cast<std::uint8_t>(m) == data[1]);
  off = 2;
  if (m == s5::method::user_pass) {
    none n;
    const auto ar = check_prefixes(
        data + off, size - off, 2, [](cs::core::byte_view in, none&) { return s5::parse_auth_status(in); },
        [](none, none) { return true; }, n);
    if (!ar.is_done()) {
      if (ar.is_error()) {
        FUZZ_CHECK(ar.ec == socks_errc::bad_version || ar.ec == socks_errc::auth_failed);
      }
      return;
    }
    FUZZ_CHECK(ar.consumed == 2 && data[off] == 0x01 && data[off + 1] == 0x00);
    off += 2;
  } else if (m != s5::method::no_auth) {
    return;  // the client gives up on any other method
  }
  const std::uint8_t* reply = data + off;
  const std::size_t rsize = size - off;
  s5::reply rep;
  const auto eq = [](const s5::reply& a, const s5::reply& b) { return a.rep == b.rep && a.bnd == b.bnd; };
  const auto r = check_prefixes(
      reply, rsize, s5::max_reply_size, [](cs::core::byte_view in, s5::reply& o) { return s5::parse_reply(in, o); },
      eq, rep);
  if (r.is_error()) {
    FUZZ_CHECK(r.ec == socks_errc::bad_version || r.ec == socks_errc::address_type_not_supported ||
               r.ec == socks_errc::bad_domain);
  }
  const std::size_t client = client_reads_reply(reply, rsize);
  if (r.is_done()) {
    FUZZ_CHECK(r.consumed == 3 + socks5_address_length(reply, 3));
    FUZZ_CHECK(r.consumed <= s5::max_reply_size);
    FUZZ_CHECK(client == r.consumed);  // the client reads exactly the message
    if (const auto* d = rep.bnd.domain()) {
      FUZZ_CHECK(d->size() == reply[4] && !d->empty());
      FUZZ_CHECK(no_nul(reinterpret_cast<const std::uint8_t*>(d->data()),
                        reinterpret_cast<const std::uint8_t*>(d->data()) + d->size()));
    }
  } else {
    FUZZ_CHECK(client == 0);
  }
}

void socks4_reply(const std::uint8_t* data, std::size_t size) {
  s4::reply rep;
  const auto eq = [](const s4::reply& a, const s4::reply& b) {
    return a.granted == b.granted && a.code == b.code && a.addr == b.addr && a.port == b.port;
  };
  const auto r = check_prefixes(
      data, size, s4::reply_size, [](cs::core::byte_view in, s4::reply& o) { return s4::parse_reply(in, o); }, eq,
      rep);
  if (r.is_error()) {
    FUZZ_CHECK(data[0] != s4::reply_version && r.ec == socks_errc::bad_version);
  }
  if (r.is_done()) {
    FUZZ_CHECK(r.consumed == s4::reply_size);
    FUZZ_CHECK(rep.granted == (data[1] == 0x5A));
  }
}

struct status_value {
  unsigned status = 0;
};

cs::protocol::parse_result parse_head(cs::core::byte_view in, status_value& out) {
  hc::response r;
  const auto res = hc::parse_response(in, r);
  if (res.is_done()) {
    out.status = r.status;
  }
  return res;
}

// Properties of one parse_response result over `in`.
void check_head(const std::uint8_t* data, std::size_t size, const cs::protocol::parse_result& r, unsigned status) {
  check_result(r, size);
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  switch (r.status) {
    case parse_status::done: {
      FUZZ_CHECK(r.consumed <= hc::max_response_head);
      FUZZ_CHECK(r.consumed >= 16);  // "HTTP/1.x SSS\r\n\r\n" at least
      const auto head = text.substr(0, r.consumed);
      FUZZ_CHECK(head.starts_with("HTTP/1.0 ") || head.starts_with("HTTP/1.1 "));
      FUZZ_CHECK(head.ends_with("\r\n\r\n"));
      FUZZ_CHECK(head.find("\r\n\r\n") == r.consumed - 4);  // the first blank line ends it
      FUZZ_CHECK(status >= 100 && status <= 599);
      FUZZ_CHECK(status == static_cast<unsigned>((head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0')));
      // Header lines (after the status line): no NUL, no bare CR or LF.
      const auto eol = head.find("\r\n");
      const auto headers = head.substr(eol + 2, head.size() - 4 - eol);
      FUZZ_CHECK(headers.find('\0') == std::string_view::npos);
      for (std::size_t i = 0; i < headers.size(); ++i) {
        if (headers[i] == '\r') {
          FUZZ_CHECK(i + 1 < headers.size() && headers[i + 1] == '\n');
        }
        if (headers[i] == '\n') {
          FUZZ_CHECK(i > 0 && headers[i - 1] == '\r');
        }
      }
      break;
    }
    case parse_status::error:
      FUZZ_CHECK(r.ec == socks_errc::general_failure || r.ec == socks_errc::field_too_long);
      FUZZ_CHECK(r.ec != socks_errc::field_too_long || size >= hc::max_response_head);
      break;
    case parse_status::need_more:
      FUZZ_CHECK(size < hc::max_response_head);
      break;
  }
}

void http_head(const std::uint8_t* data, std::size_t size) {
  status_value v;
  const auto r = check_prefixes(
      data, size, hc::max_response_head + 1, parse_head,
      [](const status_value& a, const status_value& b) { return a.status == b.status; }, v);
  check_head(data, size, r, v.status);

  // The client's loop: reads arrive in chunks; it re-parses what it has
  // after each, and stops at the first done or error, which must be what
  // the whole input gives once settled.
  std::size_t have = 0;
  std::size_t i = 0;
  cs::protocol::parse_result last;
  status_value lv;
  while (have < size) {
    const std::size_t chunk = 1 + (data[i++ % size] % 97);
    have = std::min(size, have + chunk);
    last = parse_head({data, have}, lv);
    if (!(last.status == parse_status::need_more)) {
      break;
    }
  }
  if (last.status != parse_status::need_more) {
    FUZZ_CHECK(last.status == r.status && last.consumed == r.consumed && last.ec == r.ec);
  }

  // Repeated past the bound: never a need_more, never a head over the bound.
  if (size > 0) {
    std::vector<std::uint8_t> big;
    big.reserve(hc::max_response_head + size);
    while (big.size() <= hc::max_response_head) {
      big.insert(big.end(), data, data + size);
    }
    status_value bv;
    const auto rb = parse_head({big.data(), big.size()}, bv);
    FUZZ_CHECK(rb.status != parse_status::need_more);
    check_head(big.data(), big.size(), rb, bv.status);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  socks5_exchange(data, size);
  socks4_reply(data, size);
  http_head(data, size);
  return 0;
}
