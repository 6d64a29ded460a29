// upstream::parse_proxy_url: schemes, credentials (percent-encoding, the
// 255-byte limit SOCKS5 can carry), IPv6 and names, redaction.
#include "upstream/url.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using cs::upstream::parse_proxy_url;
using cs::upstream::proxy_scheme;
using cs::upstream::proxy_url;

proxy_url parse_ok(std::string_view text) {
  proxy_url u;
  std::string err;
  EXPECT_TRUE(parse_proxy_url(text, u, &err)) << text << ": " << err;
  return u;
}

std::string parse_error(std::string_view text) {
  proxy_url u;
  std::string err;
  EXPECT_FALSE(parse_proxy_url(text, u, &err)) << text << " was accepted";
  EXPECT_FALSE(err.empty()) << text;
  return err;
}

std::string server(const proxy_url& u) { return cs::core::to_string(u.server); }

TEST(ProxyUrl, Schemes) {
  EXPECT_EQ(parse_ok("socks5://h.example:1080").scheme, proxy_scheme::socks5);
  EXPECT_EQ(parse_ok("socks5h://h.example:1080").scheme, proxy_scheme::socks5);  // curl's spelling
  EXPECT_EQ(parse_ok("socks4://10.0.0.1:1080").scheme, proxy_scheme::socks4);
  EXPECT_EQ(parse_ok("socks4a://h.example:1080").scheme, proxy_scheme::socks4a);
  EXPECT_EQ(parse_ok("http://h.example:3128").scheme, proxy_scheme::http);
  const auto d = parse_ok("direct://");
  EXPECT_EQ(d.scheme, proxy_scheme::direct);
  EXPECT_EQ(d.redacted(), "direct://");
  // The seed writes upstreams as bare HOST:PORT: SOCKS5.
  const auto bare = parse_ok("aws-exit-node.internal:1080");
  EXPECT_EQ(bare.scheme, proxy_scheme::socks5);
  EXPECT_EQ(server(bare), "aws-exit-node.internal:1080");
  EXPECT_FALSE(bare.has_credentials);
}

TEST(ProxyUrl, UnknownSchemesAndDirectWithAnAddress) {
  parse_error("https://h.example:443");
  parse_error("ftp://h.example:21");
  parse_error("SOCKS5://h.example:1080");
  parse_error("socks://h.example:1080");
  parse_error("direct://h.example:1");
  parse_error("://h.example:1080");
}

TEST(ProxyUrl, Addresses) {
  EXPECT_EQ(server(parse_ok("socks5://127.0.0.1:1080")), "127.0.0.1:1080");
  EXPECT_EQ(server(parse_ok("socks5://[::1]:1080")), "[::1]:1080");
  EXPECT_EQ(server(parse_ok("socks5://[2001:db8::7]:65535")), "[2001:db8::7]:65535");
  EXPECT_EQ(server(parse_ok("http://proxy.example:3128/")), "proxy.example:3128");  // one trailing slash
  EXPECT_TRUE(parse_ok("socks5://[::1]:1080").server.ip_address()->is_v6());
  EXPECT_TRUE(parse_ok("socks5://h.example:1").server.is_domain());
  parse_error("socks5://h.example");        // no port
  parse_error("socks5://h.example:");       // empty port
  parse_error("socks5://h.example:0");
  parse_error("socks5://h.example:65536");
  parse_error("socks5://h.example:12ab");
  parse_error("socks5://:1080");            // no host
  parse_error("socks5://::1:1080");         // IPv6 needs brackets
  parse_error("socks5://[h.example]:1080"); // brackets are for IPv6 only
  parse_error("socks5://");
  parse_error("");
  parse_error("socks5://" + std::string(256, 'a') + ":1080");  // a name over 255 bytes
  EXPECT_EQ(parse_ok("socks5://" + std::string(255, 'a') + ":1080").server.domain()->size(), 255u);
}

TEST(ProxyUrl, Credentials) {
  const auto u = parse_ok("socks5://alice:s3cret@h.example:1080");
  EXPECT_TRUE(u.has_credentials);
  EXPECT_EQ(u.username, "alice");
  EXPECT_EQ(u.password, "s3cret");
  EXPECT_EQ(server(u), "h.example:1080");

  const auto no_pw = parse_ok("socks4://userid@10.0.0.1:1080");  // SOCKS4 USERID
  EXPECT_TRUE(no_pw.has_credentials);
  EXPECT_EQ(no_pw.username, "userid");
  EXPECT_EQ(no_pw.password, "");

  const auto empty_pw = parse_ok("socks5://bob:@h.example:1080");
  EXPECT_EQ(empty_pw.username, "bob");
  EXPECT_EQ(empty_pw.password, "");

  // The last '@' separates: an unencoded '@' in the password survives.
  const auto at = parse_ok("socks5://carol:p@ss@h.example:1080");
  EXPECT_EQ(at.password, "p@ss");
  EXPECT_EQ(server(at), "h.example:1080");
  // ...and the first ':' splits user from password.
  EXPECT_EQ(parse_ok("socks5://dave:a:b@h.example:1").password, "a:b");
}

TEST(ProxyUrl, PercentEncodedCredentials) {
  const auto u = parse_ok("http://bo%20b:p%40ss%3Aw%25rd@[::1]:3128");
  EXPECT_EQ(u.username, "bo b");
  EXPECT_EQ(u.password, "p@ss:w%rd");
  EXPECT_EQ(parse_ok("socks5://%E2%9C%93:%ff@h:1").username, "\xE2\x9C\x93");
  EXPECT_EQ(parse_ok("socks5://u:%ff@h:1").password, "\xff");
  EXPECT_EQ(parse_ok("socks5://u:%Af%aF@h:1").password, "\xaf\xaf");
  for (const char* bad : {"socks5://u%:p@h:1", "socks5://u:%4@h:1", "socks5://u:%zz@h:1", "socks5://u:p%@h:1",
                          "socks5://%G0:p@h:1"}) {
    EXPECT_NE(parse_error(bad).find("percent"), std::string::npos) << bad;
  }
}

TEST(ProxyUrl, CredentialsOver255BytesAreRefused) {
  const std::string b255(255, 'u');
  const std::string b256(256, 'u');
  EXPECT_EQ(parse_ok("socks5://" + b255 + ":" + b255 + "@h:1").username.size(), 255u);
  EXPECT_NE(parse_error("socks5://" + b256 + ":p@h:1").find("255"), std::string::npos);
  EXPECT_NE(parse_error("socks5://u:" + b256 + "@h:1").find("255"), std::string::npos);
  // The limit is on the decoded bytes: 255 x "%41" is 255 bytes, 256 is not.
  std::string enc255;
  for (int i = 0; i < 255; ++i) {
    enc255 += "%41";
  }
  EXPECT_EQ(parse_ok("socks5://u:" + enc255 + "@h:1").password, std::string(255, 'A'));
  parse_error("socks5://u:" + enc255 + "%41@h:1");
}

TEST(ProxyUrl, RedactedNeverShowsThePassword) {
  EXPECT_EQ(parse_ok("socks5://alice:s3cret@h.example:1080").redacted(), "socks5://alice:***@h.example:1080");
  EXPECT_EQ(parse_ok("socks5h://h.example:1080").redacted(), "socks5://h.example:1080");
  EXPECT_EQ(parse_ok("http://u:p@[::1]:3128").redacted(), "http://u:***@[::1]:3128");
  EXPECT_EQ(parse_ok("socks4a://h:1").redacted(), "socks4a://h:1");
  EXPECT_EQ(parse_ok("h:1").redacted(), "socks5://h:1");
}

TEST(ProxyUrl, ParsingResetsTheOutput) {
  proxy_url u = parse_ok("socks5://alice:pw@h:1");
  ASSERT_TRUE(parse_proxy_url("http://other:2", u));
  EXPECT_FALSE(u.has_credentials);
  EXPECT_EQ(u.username, "");
  EXPECT_EQ(u.password, "");
  EXPECT_EQ(u.scheme, proxy_scheme::http);
  EXPECT_TRUE(parse_proxy_url("socks5://h:1", u, nullptr));  // no error sink needed
  EXPECT_FALSE(parse_proxy_url("bogus://h:1", u, nullptr));
}

TEST(ProxyUrl, SchemeNames) {
  EXPECT_EQ(cs::upstream::to_string(proxy_scheme::direct), "direct");
  EXPECT_EQ(cs::upstream::to_string(proxy_scheme::socks5), "socks5");
  EXPECT_EQ(cs::upstream::to_string(proxy_scheme::socks4), "socks4");
  EXPECT_EQ(cs::upstream::to_string(proxy_scheme::socks4a), "socks4a");
  EXPECT_EQ(cs::upstream::to_string(proxy_scheme::http), "http");
}

}  // namespace
