// Protocol parsers (src/protocol): ns to parse one complete message of the
// kind a client or upstream really sends, into an output object reused
// across iterations as the session reuses its own. Each input is checked
// to parse before timing starts.

#include "micro_support.hpp"

#include "protocol/http_connect.hpp"
#include "protocol/proxy_protocol.hpp"
#include "protocol/socks4.hpp"
#include "protocol/socks5.hpp"

#include <array>
#include <string>

namespace {

namespace core = cs::core;
namespace socks5 = cs::protocol::socks5;
namespace socks4 = cs::protocol::socks4;
namespace proxy = cs::protocol::proxy;
namespace http_connect = cs::protocol::http_connect;
using cs::bench::append;
using cs::bench::append_be16;
using cs::bench::bytes;

// A CDN-style name of exactly 60 octets.
constexpr std::string_view domain60 = "d3kx9w2q7abcdef.edge-eu-west-1.static-assets.cdn-example.com";
static_assert(domain60.size() == 60);

// Times `parse(in, out)` on `msg`; `Out` is the parser's output type.
template <class Out, class Parse>
void parse_loop(benchmark::State& state, const bytes& msg, Parse parse) {
  Out out{};
  const core::byte_view in(msg.data(), msg.size());
  if (const auto r = parse(in, out); !r.is_done() || r.consumed == 0) {
    state.SkipWithError("the benchmark input does not parse");
    return;
  }
  for (auto _ : state) {
    const auto r = parse(in, out);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(out);
  }
  cs::bench::count_items(state);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * msg.size()));
}

// ------------------------------------------------------------------ inputs

bytes socks5_greeting() { return {0x05, 0x02, 0x00, 0x02}; }  // no-auth, user/pass: what curl sends

bytes socks5_auth() {
  bytes b{0x01};
  constexpr std::string_view user = "alice.smith", pass = "correct-horse-battery-staple";
  b.push_back(static_cast<std::uint8_t>(user.size()));
  append(b, user);
  b.push_back(static_cast<std::uint8_t>(pass.size()));
  append(b, pass);
  return b;
}

bytes socks5_request_v4() {
  bytes b{0x05, 0x01, 0x00, 0x01, 93, 184, 216, 34};
  append_be16(b, 443);
  return b;
}

bytes socks5_request_v6() {
  bytes b{0x05, 0x01, 0x00, 0x04};
  for (const auto byte : core::ip::make_address_v6("2606:2800:220:1:248:1893:25c8:1946").to_bytes()) {
    b.push_back(byte);
  }
  append_be16(b, 443);
  return b;
}

bytes socks5_request_domain() {
  bytes b{0x05, 0x01, 0x00, 0x03, static_cast<std::uint8_t>(domain60.size())};
  append(b, domain60);
  append_be16(b, 443);
  return b;
}

bytes socks4_request() {
  bytes b{0x04, 0x01};
  append_be16(b, 443);
  append(b, {93, 184, 216, 34});
  append(b, "alice");
  b.push_back(0);
  return b;
}

bytes socks4a_request() {
  bytes b{0x04, 0x01};
  append_be16(b, 443);
  append(b, {0, 0, 0, 1});
  append(b, "alice");
  b.push_back(0);
  append(b, "www.example.com");
  b.push_back(0);
  return b;
}

// A DNS query to 8.8.8.8:53 inside a SOCKS5 UDP datagram; only the header is parsed.
bytes socks5_udp_v4() {
  bytes b{0x00, 0x00, 0x00, 0x01, 8, 8, 8, 8};
  append_be16(b, 53);
  cs::bench::append_fill(b, 64, 0xAB);
  return b;
}

bytes socks5_udp_domain() {
  bytes b{0x00, 0x00, 0x00, 0x03, static_cast<std::uint8_t>(domain60.size())};
  append(b, domain60);
  append_be16(b, 443);
  cs::bench::append_fill(b, 1200, 0xAB);  // a QUIC initial
  return b;
}

bytes proxy_v1_tcp4() {
  bytes b;
  append(b, "PROXY TCP4 192.0.2.1 198.51.100.1 56324 1080\r\n");
  return b;
}

bytes proxy_v1_tcp6() {
  bytes b;
  append(b, "PROXY TCP6 2001:db8:85a3::8a2e:370:7334 2001:db8::1 56324 1080\r\n");
  return b;
}

bytes proxy_v2(const char* src, const char* dst) {
  std::array<std::uint8_t, proxy::max_v2_size> buf{};
  const core::ip::tcp::endpoint s(core::ip::make_address(src), 56324);
  const core::ip::tcp::endpoint d(core::ip::make_address(dst), 1080);
  const auto n = proxy::encode_v2(s, d, buf);
  return bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
}

// What Squid answers, and the bare minimum other proxies send.
bytes http_response_squid() {
  bytes b;
  append(b,
         "HTTP/1.1 200 Connection established\r\n"
         "Date: Tue, 04 Jun 2024 10:15:42 GMT\r\n"
         "Proxy-Agent: Squid/5.7\r\n"
         "Via: 1.1 proxy.corp.example (squid/5.7)\r\n"
         "\r\n");
  return b;
}

bytes http_response_minimal() {
  bytes b;
  append(b, "HTTP/1.0 200 OK\r\n\r\n");
  return b;
}

// ------------------------------------------------------------ registration

auto socks5_request_parser = [](core::byte_view in, socks5::request& out) { return socks5::parse_request(in, out); };
auto socks5_udp_parser = [](core::byte_view in, socks5::udp_header& out) { return socks5::parse_udp_header(in, out); };
auto socks4_parser = [](core::byte_view in, socks4::request& out) { return socks4::parse_request(in, out); };
auto proxy_parser = [](core::byte_view in, proxy::header& out) { return proxy::parse(in, out); };
auto http_parser = [](core::byte_view in, http_connect::response& out) {
  return http_connect::parse_response(in, out);
};

template <class Out, class Parse>
void add(const char* name, bytes (*input)(), Parse parse) {
  benchmark::RegisterBenchmark(name, [input, parse](benchmark::State& state) {
    parse_loop<Out>(state, input(), parse);
  });
}

[[maybe_unused]] const bool registered = [] {
  add<socks5::greeting>("parse/socks5_greeting", socks5_greeting,
                        [](core::byte_view in, socks5::greeting& out) { return socks5::parse_greeting(in, out); });
  add<socks5::auth_request>("parse/socks5_auth_request", socks5_auth,
                            [](core::byte_view in, socks5::auth_request& out) {
                              return socks5::parse_auth_request(in, out);
                            });
  add<socks5::request>("parse/socks5_request_ipv4", socks5_request_v4, socks5_request_parser);
  add<socks5::request>("parse/socks5_request_ipv6", socks5_request_v6, socks5_request_parser);
  add<socks5::request>("parse/socks5_request_domain60", socks5_request_domain, socks5_request_parser);
  add<socks4::request>("parse/socks4_request", socks4_request, socks4_parser);
  add<socks4::request>("parse/socks4a_request", socks4a_request, socks4_parser);
  add<socks5::udp_header>("parse/socks5_udp_header_ipv4", socks5_udp_v4, socks5_udp_parser);
  add<socks5::udp_header>("parse/socks5_udp_header_domain60", socks5_udp_domain, socks5_udp_parser);
  add<proxy::header>("parse/proxy_v1_tcp4", proxy_v1_tcp4, proxy_parser);
  add<proxy::header>("parse/proxy_v1_tcp6", proxy_v1_tcp6, proxy_parser);
  add<proxy::header>("parse/proxy_v2_tcp4", [] { return proxy_v2("192.0.2.1", "198.51.100.1"); }, proxy_parser);
  add<proxy::header>("parse/proxy_v2_tcp6", [] { return proxy_v2("2001:db8:85a3::8a2e:370:7334", "2001:db8::1"); },
                     proxy_parser);
  add<http_connect::response>("parse/http_connect_response_squid", http_response_squid, http_parser);
  add<http_connect::response>("parse/http_connect_response_minimal", http_response_minimal, http_parser);
  return true;
}();

}  // namespace
