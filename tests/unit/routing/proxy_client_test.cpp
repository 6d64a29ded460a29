// upstream::open_tunnel against scripted upstreams in-process (a loopback
// socket pair; the upstream side follows a script of reads and writes):
// the exact bytes CleverSocks sends for SOCKS5 (no-auth, RFC 1929), SOCKS4/4a
// and HTTP CONNECT (Basic), how each reply maps to an error and whose fault
// it is (hop_failed), exact-length reads (tunnel bytes after a SOCKS reply
// stay in the socket; after an HTTP head they come back as `early`), and
// malformed, truncated and over-long replies.
#include "upstream/proxy_client.hpp"

#include "net_support.hpp"
#include "test_support.hpp"

#include <boost/asio/detached.hpp>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace cs::test;
using cs::core::error_code;
using cs::core::socks_errc;
using cs::core::target_address;
using cs::upstream::hop_result;
using cs::upstream::open_tunnel;
using cs::upstream::proxy_url;
namespace errc = boost::asio::error;

struct step {
  enum kind { read, read_head, write, close, read_rest } k;
  std::size_t n = 0;
  bytes data;
};
step rd(std::size_t n) { return {step::read, n, {}}; }
step head() { return {step::read_head, 0, {}}; }
step wr(bytes d) { return {step::write, 0, std::move(d)}; }
step wr(std::string_view s) { return {step::write, 0, str_bytes(s)}; }
step eof() { return {step::close, 0, {}}; }
step rest() { return {step::read_rest, 0, {}}; }

// The upstream: runs the steps, recording what it read.
asio::awaitable<void> serve(tcp::socket& s, std::vector<step> steps, std::vector<bytes>& reads) {
  for (auto& st : steps) {
    switch (st.k) {
      case step::read:
        reads.push_back(co_await read_exactly(s, st.n));
        break;
      case step::read_head: {
        bytes got;
        std::uint8_t c = 0;
        while (got.size() < 65536) {
          auto [ec, n] = co_await asio::async_read(s, asio::buffer(&c, 1), nothrow_awaitable);
          if (ec || n == 0) {
            break;
          }
          got.push_back(c);
          if (got.size() >= 4 && std::equal(got.end() - 4, got.end(), "\r\n\r\n")) {
            break;
          }
        }
        reads.push_back(std::move(got));
        break;
      }
      case step::write:
        co_await write_all(s, st.data);
        break;
      case step::close: {
        error_code ec;
        s.shutdown(tcp::socket::shutdown_both, ec);
        s.close(ec);
        break;
      }
      case step::read_rest: {
        auto [ec, data] = co_await read_to_eof(s);
        reads.push_back(std::move(data));
        break;
      }
    }
  }
}

struct outcome {
  hop_result r;
  bytes after;                // what the client could read after open_tunnel (to EOF)
  std::vector<bytes> reads;   // what the upstream read, step by step
};

asio::awaitable<void> client(tcp::socket& a, const proxy_url& hop, const target_address& next, outcome& out,
                             bool read_after, bool close_after) {
  out.r = co_await open_tunnel(a, hop, next);
  if (read_after) {
    auto [ec, data] = co_await read_to_eof(a);
    out.after = std::move(data);
  }
  if (close_after) {
    error_code ec;
    a.close(ec);
  }
}

outcome run(const std::string& hop_text, std::string_view next_text, std::vector<step> steps, bool read_after = false,
            bool close_after = false, const proxy_url* hop_override = nullptr) {
  asio::io_context io;
  auto [a, b] = socket_pair(io);
  outcome out;
  proxy_url hop;
  if (hop_override != nullptr) {
    hop = *hop_override;
  } else {
    EXPECT_TRUE(cs::upstream::parse_proxy_url(hop_text, hop)) << hop_text;
  }
  target_address next;
  EXPECT_TRUE(cs::core::parse_target(next_text, next)) << next_text;
  asio::co_spawn(io, serve(b, std::move(steps), out.reads), asio::detached);
  run_bounded(io, client(a, hop, next, out, read_after, close_after), std::chrono::seconds(5));
  // Let the upstream finish its script (e.g. a final read to EOF); returns
  // as soon as it has (no work left), at most 200 ms for a stuck script.
  io.restart();
  io.run_for(std::chrono::milliseconds(200));
  return out;
}

bytes ok_reply_v4() { return b({0x05, 0x00, 0x00, 0x01, 127, 0, 0, 1, 0x00, 0x50}); }

bytes socks5_request_domain(std::string_view name, std::uint16_t port) {
  bytes out = b({0x05, 0x01, 0x00, 0x03, static_cast<int>(name.size())});
  out.insert(out.end(), name.begin(), name.end());
  out.push_back(static_cast<std::uint8_t>(port >> 8));
  out.push_back(static_cast<std::uint8_t>(port & 0xFF));
  return out;
}

// ------------------------------------------------------------ SOCKS5

TEST(OpenTunnelSocks5, NoAuthSendsTheNameAndLeavesTunnelBytesAlone) {
  auto o = run("socks5://h:1", "far.test:443",
               {rd(3), wr(b({0x05, 0x00})), rd(15), wr(cat({ok_reply_v4(), str_bytes("DATA")})), eof()}, true);
  EXPECT_FALSE(o.r.ec) << o.r.ec.message();
  EXPECT_FALSE(o.r.hop_failed);
  EXPECT_TRUE(o.r.early.empty());
  ASSERT_EQ(o.reads.size(), 2u);
  EXPECT_EQ(o.reads[0], b({0x05, 0x01, 0x00}));  // offers no-auth only
  EXPECT_EQ(o.reads[1], socks5_request_domain("far.test", 443));
  EXPECT_EQ(o.after, str_bytes("DATA"));  // exact-length reply read
}

TEST(OpenTunnelSocks5, AddressTargets) {
  auto v4 = run("socks5://h:1", "192.0.2.1:80", {rd(3), wr(b({0x05, 0x00})), rd(10), wr(ok_reply_v4()), eof()});
  EXPECT_FALSE(v4.r.ec);
  ASSERT_EQ(v4.reads.size(), 2u);
  EXPECT_EQ(v4.reads[1], b({0x05, 0x01, 0x00, 0x01, 192, 0, 2, 1, 0x00, 80}));
  auto v6 = run("socks5://h:1", "[2001:db8::1]:443", {rd(3), wr(b({0x05, 0x00})), rd(22), wr(ok_reply_v4()), eof()});
  EXPECT_FALSE(v6.r.ec);
  ASSERT_EQ(v6.reads.size(), 2u);
  EXPECT_EQ(v6.reads[1], b({0x05, 0x01, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x01,
                            0xBB}));
}

TEST(OpenTunnelSocks5, UsernamePassword) {
  auto o = run("socks5://u:pw@h:1", "far.test:80",
               {rd(4), wr(b({0x05, 0x02})), rd(6), wr(b({0x01, 0x00})), rd(15), wr(ok_reply_v4()), eof()});
  EXPECT_FALSE(o.r.ec) << o.r.ec.message();
  ASSERT_EQ(o.reads.size(), 3u);
  EXPECT_EQ(o.reads[0], b({0x05, 0x02, 0x00, 0x02}));  // offers both
  EXPECT_EQ(o.reads[1], b({0x01, 0x01, 'u', 0x02, 'p', 'w'}));
  EXPECT_EQ(o.reads[2], socks5_request_domain("far.test", 80));
}

TEST(OpenTunnelSocks5, CredentialsOfferedButNoAuthChosen) {
  auto o = run("socks5://u:pw@h:1", "far.test:80", {rd(4), wr(b({0x05, 0x00})), rd(15), wr(ok_reply_v4()), eof()});
  EXPECT_FALSE(o.r.ec) << o.r.ec.message();
}

TEST(OpenTunnelSocks5, MethodFailures) {
  for (const auto& reply : {b({0x05, 0xFF}), b({0x05, 0x02}), b({0x05, 0x01}), b({0x05, 0x80}), b({0x04, 0x00}),
                            b({0x00, 0x00})}) {
    auto o = run("socks5://h:1", "far.test:80", {rd(3), wr(reply), rest()}, false, true);
    EXPECT_EQ(o.r.ec, socks_errc::upstream_failure) << o.r.ec.message();
    EXPECT_TRUE(o.r.hop_failed);
    ASSERT_EQ(o.reads.size(), 2u);
    EXPECT_TRUE(o.reads[1].empty()) << "a request was sent after a bad method selection";
  }
  auto truncated = run("socks5://h:1", "far.test:80", {rd(3), wr(b({0x05})), eof()});
  EXPECT_EQ(truncated.r.ec, socks_errc::upstream_failure);
  EXPECT_TRUE(truncated.r.hop_failed);
  auto closed = run("socks5://h:1", "far.test:80", {eof()});
  EXPECT_TRUE(closed.r.ec);
  EXPECT_TRUE(closed.r.hop_failed);
}

TEST(OpenTunnelSocks5, AuthFailures) {
  for (const auto& status : {b({0x01, 0x01}), b({0x01, 0xFF}), b({0x05, 0x00}), b({0x00, 0x00})}) {
    auto o = run("socks5://u:pw@h:1", "far.test:80", {rd(4), wr(b({0x05, 0x02})), rd(6), wr(status), rest()}, false,
                 true);
    EXPECT_EQ(o.r.ec, socks_errc::upstream_failure);
    EXPECT_TRUE(o.r.hop_failed);
    ASSERT_EQ(o.reads.size(), 3u);
    EXPECT_TRUE(o.reads[2].empty()) << "a request was sent after a refused login";
  }
  auto truncated = run("socks5://u:pw@h:1", "far.test:80", {rd(4), wr(b({0x05, 0x02})), rd(6), wr(b({0x01})), eof()});
  EXPECT_EQ(truncated.r.ec, socks_errc::upstream_failure);
}

TEST(OpenTunnelSocks5, OverlongCredentialsAreNeverSent) {
  proxy_url hop;
  ASSERT_TRUE(cs::upstream::parse_proxy_url("socks5://h:1", hop));
  hop.has_credentials = true;
  hop.username = std::string(256, 'u');  // the URL parser refuses this; the client must too
  hop.password = "pw";
  auto o = run("", "far.test:80", {rd(4), wr(b({0x05, 0x02})), rest()}, false, true, &hop);
  EXPECT_EQ(o.r.ec, socks_errc::upstream_failure);
  ASSERT_EQ(o.reads.size(), 2u);
  EXPECT_TRUE(o.reads[1].empty()) << "sent " << o.reads[1].size() << " bytes of a truncated credential";
}

TEST(OpenTunnelSocks5, ReplyCodes) {
  struct c {
    int rep;
    error_code ec;
    bool hop_failed;
  };
  for (const auto& [rep, ec, hop_failed] :
       {c{0x01, socks_errc::upstream_failure, true}, c{0x02, socks_errc::not_allowed, false},
        c{0x03, errc::network_unreachable, false}, c{0x04, errc::host_unreachable, false},
        c{0x05, errc::connection_refused, false}, c{0x06, socks_errc::ttl_expired, false},
        c{0x07, socks_errc::command_not_supported, false}, c{0x08, socks_errc::address_type_not_supported, false},
        c{0x09, socks_errc::upstream_failure, true}, c{0xFF, socks_errc::upstream_failure, true}}) {
    auto o = run("socks5://h:1", "far.test:80",
                 {rd(3), wr(b({0x05, 0x00})), rd(15), wr(b({0x05, rep, 0x00, 0x01, 0, 0, 0, 0, 0, 0})), eof()});
    EXPECT_EQ(o.r.ec, ec) << "REP " << rep << ": " << o.r.ec.message();
    EXPECT_EQ(o.r.hop_failed, hop_failed) << "REP " << rep;
  }
}

TEST(OpenTunnelSocks5, LongDomainInTheReplyIsReadExactly) {
  for (int len : {0x7F, 0x80, 0xC8, 0xFF}) {
    bytes reply = b({0x05, 0x00, 0x00, 0x03, len});
    reply.insert(reply.end(), static_cast<std::size_t>(len), 'd');
    reply.push_back(0x01);
    reply.push_back(0xBB);
    auto o = run("socks5://h:1", "far.test:80",
                 {rd(3), wr(b({0x05, 0x00})), rd(15), wr(cat({reply, str_bytes("tunnel")})), eof()}, true);
    EXPECT_FALSE(o.r.ec) << "length " << len << ": " << o.r.ec.message();
    EXPECT_EQ(o.after, str_bytes("tunnel")) << "length " << len;
  }
}

TEST(OpenTunnelSocks5, MalformedReplies) {
  const std::vector<bytes> replies = {
      b({0x05, 0x00, 0x00, 0x03, 0x80, 'a', 'b'}),                   // domain >= 0x80, truncated
      b({0x05, 0x00, 0x00, 0x03, 0xFF}),                              // only the length
      cat({b({0x05, 0x00, 0x00, 0x03, 0xC8}), bytes(100, 'a')}),      // half of it
      b({0x05, 0x00, 0x00, 0x03, 0x05, 'a', 0, 'b', 'c', 'd', 0, 80}),  // NUL in the name
      b({0x05, 0x00, 0x00, 0x03, 0x00, 0x00, 0x50}),                  // empty name
      b({0x05, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0}),                  // ATYP 0
      b({0x05, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0}),                  // ATYP 2
      b({0x05, 0x00, 0x00, 0x05, 0, 0, 0, 0, 0, 0}),                  // ATYP 5
      b({0x05, 0x00, 0x00, 0xFF, 0, 0, 0, 0, 0, 0}),                  // ATYP 255
      b({0x04, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0}),                  // VER 4
      b({0x00, 0x5A, 0x00, 0x50, 127, 0, 0, 1}),                      // a SOCKS4 reply
      b({0x05, 0x00, 0x00}),                                          // truncated head
      b({0x05, 0x00, 0x00, 0x01, 127, 0}),                            // truncated IPv4
      cat({b({0x05, 0x00, 0x00, 0x04}), bytes(10, 0)}),               // truncated IPv6
      str_bytes("HTTP/1.1 400 Bad Request\r\n\r\n"),
  };
  for (const auto& reply : replies) {
    auto o = run("socks5://h:1", "far.test:80", {rd(3), wr(b({0x05, 0x00})), rd(15), wr(reply), eof()});
    EXPECT_EQ(o.r.ec, socks_errc::upstream_failure) << ::testing::PrintToString(reply) << ": " << o.r.ec.message();
    EXPECT_TRUE(o.r.hop_failed);
  }
}

TEST(OpenTunnelSocks5, ReplyInPieces) {
  std::vector<step> steps{rd(3), wr(b({0x05})), wr(b({0x00})), rd(15)};
  for (auto byte : ok_reply_v4()) {
    steps.push_back(wr(bytes{byte}));
  }
  steps.push_back(eof());
  auto o = run("socks5://h:1", "far.test:80", std::move(steps));
  EXPECT_FALSE(o.r.ec) << o.r.ec.message();
}

// ------------------------------------------------------------ SOCKS4 / 4a

TEST(OpenTunnelSocks4, Socks4WithUserid) {
  auto o = run("socks4://userid@h:1", "10.0.0.1:80",
               {rd(15), wr(cat({b({0x00, 0x5A, 0, 0, 0, 0, 0, 0}), str_bytes("DATA")})), eof()}, true);
  EXPECT_FALSE(o.r.ec) << o.r.ec.message();
  ASSERT_EQ(o.reads.size(), 1u);
  EXPECT_EQ(o.reads[0], cat({b({0x04, 0x01, 0x00, 0x50, 10, 0, 0, 1}), str_bytes("userid"), b({0x00})}));
  EXPECT_EQ(o.after, str_bytes("DATA"));
}

TEST(OpenTunnelSocks4, Socks4aSendsTheName) {
  auto o = run("socks4a://h:1", "far.test:80", {rd(18), wr(b({0x00, 0x5A, 0, 0, 0, 0, 0, 0})), eof()});
  EXPECT_FALSE(o.r.ec) << o.r.ec.message();
  ASSERT_EQ(o.reads.size(), 1u);
  EXPECT_EQ(o.reads[0], cat({b({0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1, 0x00}), str_bytes("far.test"), b({0x00})}));
}

TEST(OpenTunnelSocks4, Failures) {
  auto rejected = run("socks4://h:1", "10.0.0.1:80", {rd(9), wr(b({0x00, 0x5B, 0, 0, 0, 0, 0, 0})), eof()});
  EXPECT_EQ(rejected.r.ec, socks_errc::upstream_failure);
  EXPECT_FALSE(rejected.r.hop_failed);  // the one SOCKS4 failure code does not blame the hop
  for (const auto& reply : {b({0x05, 0x5A, 0, 0, 0, 0, 0, 0}), b({0x00, 0x5A, 0, 0}), b({})}) {
    auto o = run("socks4://h:1", "10.0.0.1:80", {rd(9), wr(reply), eof()});
    EXPECT_EQ(o.r.ec, socks_errc::upstream_failure) << ::testing::PrintToString(reply);
    EXPECT_TRUE(o.r.hop_failed);
  }
  for (const char* hop : {"socks4://h:1", "socks4a://h:1"}) {
    auto v6 = run(hop, "[::1]:80", {rest()}, false, true);
    EXPECT_EQ(v6.r.ec, socks_errc::address_type_not_supported) << hop;
    ASSERT_EQ(v6.reads.size(), 1u);
    EXPECT_TRUE(v6.reads[0].empty()) << hop;
  }
}

// ------------------------------------------------------------ HTTP CONNECT

TEST(OpenTunnelHttp, RequestAndEarlyBytes) {
  auto o = run("http://h:1", "far.test:443",
               {head(), wr("HTTP/1.1 200 Connection established\r\nProxy-Agent: t\r\n\r\nEARLY"), eof()}, true);
  EXPECT_FALSE(o.r.ec) << o.r.ec.message();
  ASSERT_EQ(o.reads.size(), 1u);
  EXPECT_EQ(o.reads[0], str_bytes("CONNECT far.test:443 HTTP/1.1\r\nHost: far.test:443\r\n\r\n"));
  bytes tunnel = o.r.early;
  tunnel.insert(tunnel.end(), o.after.begin(), o.after.end());
  EXPECT_EQ(tunnel, str_bytes("EARLY"));
}

TEST(OpenTunnelHttp, BasicAuthAndIpv6) {
  auto o = run("http://Aladdin:open%20sesame@h:1", "[2001:db8::1]:443", {head(), wr("HTTP/1.0 200 OK\r\n\r\n"), eof()});
  EXPECT_FALSE(o.r.ec) << o.r.ec.message();
  ASSERT_EQ(o.reads.size(), 1u);
  EXPECT_EQ(o.reads[0], str_bytes("CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n"
                                  "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"));
  EXPECT_TRUE(o.r.early.empty());
}

TEST(OpenTunnelHttp, StatusCodes) {
  struct c {
    const char* head;
    error_code ec;
    bool hop_failed;
  };
  for (const auto& [text, ec, hop_failed] : {
           c{"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
             socks_errc::upstream_failure, true},
           c{"HTTP/1.1 403 Forbidden\r\n\r\n", socks_errc::not_allowed, false},
           c{"HTTP/1.1 405 Method Not Allowed\r\n\r\n", socks_errc::not_allowed, false},
           c{"HTTP/1.1 502 Bad Gateway\r\n\r\n", errc::host_unreachable, false},
           c{"HTTP/1.1 504 Gateway Timeout\r\n\r\n", errc::host_unreachable, false},
           c{"HTTP/1.1 500 Internal Server Error\r\n\r\n", socks_errc::upstream_failure, true},
           c{"HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n", socks_errc::upstream_failure, true},
           c{"HTTP/1.1 100 Continue\r\n\r\n", socks_errc::upstream_failure, true},
       }) {
    auto o = run("http://h:1", "far.test:443", {head(), wr(text), eof()});
    EXPECT_EQ(o.r.ec, ec) << text << ": " << o.r.ec.message();
    EXPECT_EQ(o.r.hop_failed, hop_failed) << text;
  }
}

TEST(OpenTunnelHttp, MalformedAndUnboundedHeads) {
  std::string endless = "HTTP/1.1 200 OK\r\n";
  while (endless.size() < 20000) {
    endless += "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaa\r\n";
  }
  for (const std::string& text : {endless, std::string("SSH-2.0-x\r\n\r\n"), std::string("HTTP/1.1 2000 OK\r\n\r\n"),
                                   std::string("HTTP/1.1 200 OK\r\nA: b\nC: d\r\n\r\n"),
                                   std::string("HTTP/1.1 200 OK\r\nA: \0\r\n\r\n", 25),
                                   std::string("HTTP/1.1 200 OK\r\nX: y\r\n"), std::string("")}) {
    auto o = run("http://h:1", "far.test:443", {head(), wr(text), eof()});
    EXPECT_EQ(o.r.ec, socks_errc::upstream_failure) << text.substr(0, 40) << ": " << o.r.ec.message();
    EXPECT_TRUE(o.r.hop_failed);
  }
}

TEST(OpenTunnelHttp, HeadInPieces) {
  std::vector<step> steps{head()};
  for (char ch : std::string("HTTP/1.1 200 OK\r\nVia: 1.1 p\r\n\r\n")) {
    steps.push_back(wr(bytes{static_cast<std::uint8_t>(ch)}));
  }
  steps.push_back(eof());
  auto o = run("http://h:1", "far.test:443", std::move(steps));
  EXPECT_FALSE(o.r.ec) << o.r.ec.message();
  EXPECT_TRUE(o.r.early.empty());
}

TEST(OpenTunnelHttp, OverlongCredentialsAreNeverSent) {
  proxy_url hop;
  ASSERT_TRUE(cs::upstream::parse_proxy_url("http://h:1", hop));
  hop.has_credentials = true;
  hop.username = "u";
  hop.password = std::string(256, 'p');
  auto o = run("", "far.test:443", {rest()}, false, true, &hop);
  EXPECT_TRUE(o.r.ec);
  ASSERT_EQ(o.reads.size(), 1u);
  EXPECT_TRUE(o.reads[0].empty()) << "sent " << o.reads[0].size() << " bytes";
}

// ------------------------------------------------------------ error mapping

TEST(UpstreamErrors, HttpStatusTable) {
  using cs::upstream::error_for_http_status;
  EXPECT_EQ(error_for_http_status(403), socks_errc::not_allowed);
  EXPECT_EQ(error_for_http_status(405), socks_errc::not_allowed);
  EXPECT_EQ(error_for_http_status(502), errc::host_unreachable);
  EXPECT_EQ(error_for_http_status(504), errc::host_unreachable);
  for (unsigned s : {100u, 301u, 400u, 404u, 407u, 500u, 503u, 599u}) {
    EXPECT_EQ(error_for_http_status(s), socks_errc::upstream_failure) << s;
  }
}

TEST(UpstreamErrors, DefinedReplyCodesReachTheClientUnchanged) {
  // What the far end said about the target is what our client is told.
  for (int rep = 0x01; rep <= 0x08; ++rep) {
    const auto ec = cs::upstream::error_for_upstream_reply(static_cast<std::uint8_t>(rep));
    EXPECT_EQ(static_cast<int>(cs::core::to_reply_code(ec)), rep) << "upstream REP " << rep << " -> " << ec.message();
  }
  for (int rep : {0x09, 0x7F, 0xFF}) {
    const auto ec = cs::upstream::error_for_upstream_reply(static_cast<std::uint8_t>(rep));
    EXPECT_EQ(cs::core::to_reply_code(ec), cs::core::reply_code::general_failure) << rep;
  }
}

}  // namespace
