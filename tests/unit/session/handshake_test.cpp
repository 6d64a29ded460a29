#include "session/handshake.hpp"

#include "net_support.hpp"
#include "test_support.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace cs::test;
using namespace boost::asio::experimental::awaitable_operators;
using cs::auth::credential;
using cs::auth::user_store;
using cs::core::socks_errc;
using cs::session::client_protocol;
using cs::session::handshake_buffer;
using cs::session::handshake_result;
namespace core = cs::core;
using bytevec = std::vector<std::uint8_t>;

// ------------------------------------------------------------------ buffer

TEST(HandshakeBuffer, ConsumeAndCompact) {
  handshake_buffer buf;
  EXPECT_TRUE(buf.pending().empty());
  auto space = buf.free_space();
  EXPECT_EQ(space.size(), handshake_buffer::capacity);
  for (std::size_t i = 0; i < 10; ++i) {
    space[i] = static_cast<std::uint8_t>(i);
  }
  buf.end += 10;
  EXPECT_EQ(buf.pending().size(), 10u);
  buf.consume(4);
  ASSERT_EQ(buf.pending().size(), 6u);
  EXPECT_EQ(buf.pending()[0], 4);
  // free_space() moves the pending bytes to the front.
  space = buf.free_space();
  EXPECT_EQ(buf.begin, 0u);
  EXPECT_EQ(buf.end, 6u);
  EXPECT_EQ(space.size(), handshake_buffer::capacity - 6);
  EXPECT_EQ(space.data(), buf.data.data() + 6);
  ASSERT_EQ(buf.pending().size(), 6u);
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(buf.pending()[i], i + 4) << i;
  }
  // Consuming everything resets to empty.
  buf.consume(6);
  EXPECT_TRUE(buf.pending().empty());
  EXPECT_EQ(buf.begin, 0u);
  EXPECT_EQ(buf.end, 0u);
  EXPECT_EQ(buf.free_space().size(), handshake_buffer::capacity);
}

TEST(HandshakeBuffer, HoldsTheLargestPipelinedHandshake) {
  static_assert(handshake_buffer::capacity >= 257 + 513 + 262, "greeting + auth + request must fit");
  handshake_buffer buf;
  buf.end = handshake_buffer::capacity;
  EXPECT_TRUE(buf.free_space().empty());
  buf.consume(handshake_buffer::capacity - 1);
  EXPECT_EQ(buf.free_space().size(), handshake_buffer::capacity - 1);
  EXPECT_EQ(buf.pending().size(), 1u);
}

TEST(HandshakeNames, ToString) {
  EXPECT_EQ(cs::session::to_string(client_protocol::socks5), "socks5");
  EXPECT_EQ(cs::session::to_string(client_protocol::socks4), "socks4");
  EXPECT_EQ(cs::session::to_string(client_protocol::unknown), "-");
  EXPECT_EQ(cs::session::to_string(cs::session::command::connect), "connect");
  EXPECT_EQ(cs::session::to_string(cs::session::command::bind), "bind");
  EXPECT_EQ(cs::session::to_string(cs::session::command::udp_associate), "udp");
}

// ------------------------------------------------------------------ run_handshake over loopback

const bytevec connect_v4 = bv(0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0x00, 0x50);

bytevec auth_msg(const std::string& u, const std::string& p) {
  return catv(bv(0x01, static_cast<int>(u.size())), str_bytes(u), bv(static_cast<int>(p.size())), str_bytes(p));
}

// The session's authenticator reduced to a user_store lookup; records what
// it was asked. Optionally takes its time (as an off-loop argon2 check does).
class store_authenticator final : public cs::session::authenticator {
 public:
  explicit store_authenticator(const user_store& users, std::chrono::milliseconds latency = {},
                               const tcp::socket* peer = nullptr)
      : users_(users), latency_(latency), peer_(peer) {}
  bool required() const noexcept override { return !users_.empty(); }
  asio::awaitable<const cs::auth::user*> authenticate(std::string_view name, std::string_view password) override {
    calls.emplace_back(std::string(name), std::string(password));
    if (latency_.count() > 0) {
      co_await delay(latency_);
    }
    co_return users_.verify(name, password);
  }
  // Records each verdict and how many bytes the client had not read yet.
  void decided(bool accepted) noexcept override {
    boost::system::error_code ec;
    verdicts.push_back({accepted, peer_ != nullptr ? peer_->available(ec) : 0});
  }
  std::vector<std::pair<std::string, std::string>> calls;
  std::vector<std::pair<bool, std::size_t>> verdicts;

 private:
  const user_store& users_;
  std::chrono::milliseconds latency_;
  const tcp::socket* peer_;
};

class HandshakeTest : public ::testing::Test {
 protected:
  void SetUp() override { std::tie(client, server) = socket_pair(io); }

  // Runs the handshake on `server` concurrently with `script` on `client`.
  template <typename Script>
  handshake_result run(const user_store& users, Script script, std::chrono::milliseconds auth_latency = {}) {
    handshake_result result;
    store_authenticator auth(users, auth_latency, &client);
    const bool ok = run_bounded(io, [&]() -> asio::awaitable<void> {
      auto hs = [&]() -> asio::awaitable<void> {
        result = co_await cs::session::run_handshake(server, buf, auth);
        handshake_returned = true;
      };
      co_await (hs() && script());
    }(), std::chrono::seconds(5));
    EXPECT_TRUE(ok);
    auth_calls = auth.calls;
    verdicts = auth.verdicts;
    return result;
  }

  asio::awaitable<void> send(const bytevec& data) {
    const auto ec = co_await write_all(client, data);
    EXPECT_FALSE(ec) << ec.message();
  }

  asio::awaitable<void> expect_reply(const bytevec& expected) {
    const auto got = co_await read_exactly(client, expected.size());
    EXPECT_EQ(got, expected);
  }

  // After the handshake, the server must not have written anything else.
  void expect_nothing_more_written() {
    server.shutdown(tcp::socket::shutdown_send);
    bytevec rest;
    run_bounded(io, [&]() -> asio::awaitable<void> {
      auto r = co_await read_to_eof(client);
      rest = std::move(r.second);
    }(), std::chrono::seconds(2));
    EXPECT_TRUE(rest.empty()) << rest.size() << " unexpected byte(s) from the server";
  }

  asio::io_context io;
  tcp::socket client{io}, server{io};
  handshake_buffer buf;
  bool handshake_returned = false;
  std::vector<std::pair<std::string, std::string>> auth_calls;
  std::vector<std::pair<bool, std::size_t>> verdicts;  // (accepted, client bytes unread then)
};

TEST_F(HandshakeTest, Socks5NoAuth) {
  const user_store users;
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x01, 0x00));
    co_await expect_reply(bv(0x05, 0x00));
    co_await send(connect_v4);
  });
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.proto, client_protocol::socks5);
  EXPECT_EQ(r.cmd, cs::session::command::connect);
  EXPECT_TRUE(r.target_known);
  EXPECT_EQ(r.target, (core::target_address{core::ip::make_address("127.0.0.1"), 80}));
  EXPECT_EQ(r.user, nullptr);
  EXPECT_FALSE(r.reply_due);
  EXPECT_TRUE(buf.pending().empty());
  EXPECT_TRUE(auth_calls.empty());
  expect_nothing_more_written();  // the request's reply is the session's job
}

TEST_F(HandshakeTest, Socks5NoAuthPreferredEvenWhenUserPassAlsoOffered) {
  const user_store users;
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x02, 0x02, 0x00));
    co_await expect_reply(bv(0x05, 0x00));
    co_await send(catv(bv(0x05, 0x03, 0x00, 0x03, 4), str_bytes("dns.")));
    co_await send(bv(0x00, 0x35));
  });
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.cmd, cs::session::command::udp_associate);
  EXPECT_EQ(core::to_string(r.target), "dns.:53");
}

TEST_F(HandshakeTest, Socks5UserPassOk) {
  const std::vector<credential> creds{{"alice", "s3cret"}};
  const user_store users(creds);
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x02, 0x00, 0x02));
    co_await expect_reply(bv(0x05, 0x02));
    co_await send(auth_msg("alice", "s3cret"));
    co_await expect_reply(bv(0x01, 0x00));
    co_await send(bv(0x05, 0x02, 0x00, 0x01, 10, 0, 0, 1, 0x01, 0xBB));
  });
  EXPECT_FALSE(r.ec) << r.ec.message();
  ASSERT_NE(r.user, nullptr);
  EXPECT_EQ(r.user->name, "alice");
  EXPECT_EQ(r.cmd, cs::session::command::bind);
  EXPECT_TRUE(r.target_known);
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_TRUE(verdicts[0].first);
}

TEST_F(HandshakeTest, Socks5WrongPasswordGets0101) {
  const std::vector<credential> creds{{"alice", "s3cret"}};
  const user_store users(creds);
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x01, 0x02));
    co_await expect_reply(bv(0x05, 0x02));
    co_await send(auth_msg("alice", "s3cretX"));
    co_await expect_reply(bv(0x01, 0x01));
  });
  EXPECT_EQ(r.ec, socks_errc::auth_failed) << r.ec.message();
  EXPECT_EQ(r.user, nullptr);
  EXPECT_FALSE(r.target_known);
  EXPECT_FALSE(r.reply_due) << "answered in-protocol already";
  ASSERT_EQ(auth_calls.size(), 1u);
  EXPECT_EQ(auth_calls[0].second, "s3cretX");
  expect_nothing_more_written();
}

// The verdict is reported (and counted, in the session) before the status
// is written: a client that has its answer sees it in the metrics too.
TEST_F(HandshakeTest, Socks5VerdictIsDecidedBeforeTheClientIsTold) {
  const std::vector<credential> creds{{"alice", "s3cret"}};
  const user_store users(creds);
  run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x01, 0x02));
    co_await expect_reply(bv(0x05, 0x02));
    co_await send(auth_msg("alice", "wrong"));
    co_await expect_reply(bv(0x01, 0x01));
  });
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_FALSE(verdicts[0].first);
  EXPECT_EQ(verdicts[0].second, 0u) << "the client already held the status when the verdict was reported";
}

TEST_F(HandshakeTest, Socks5MalformedCredentialsAreARefusedVerdict) {
  const std::vector<credential> creds{{"alice", "s3cret"}};
  const user_store users(creds);
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x01, 0x02));
    co_await expect_reply(bv(0x05, 0x02));
    co_await send(bv(0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0, 80));  // a CONNECT instead of RFC 1929
    co_await expect_reply(bv(0x01, 0x01));
  });
  EXPECT_EQ(r.ec, socks_errc::auth_failed) << r.ec.message();
  EXPECT_TRUE(auth_calls.empty());
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_FALSE(verdicts[0].first);
}

TEST_F(HandshakeTest, Socks5UnknownUserGets0101) {
  const std::vector<credential> creds{{"alice", "s3cret"}};
  const user_store users(creds);
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x01, 0x02));
    co_await expect_reply(bv(0x05, 0x02));
    co_await send(auth_msg("alicex", "s3cret"));
    co_await expect_reply(bv(0x01, 0x01));
  });
  EXPECT_EQ(r.ec, socks_errc::auth_failed);
}

TEST_F(HandshakeTest, Socks5OnlyNoAuthOfferedWithUsersGets05FF) {
  const std::vector<credential> creds{{"alice", "s3cret"}};
  const user_store users(creds);
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x01, 0x00));
    co_await expect_reply(bv(0x05, 0xFF));
  });
  EXPECT_EQ(r.ec, socks_errc::no_acceptable_method) << r.ec.message();
  EXPECT_FALSE(r.reply_due);
  expect_nothing_more_written();
}

TEST_F(HandshakeTest, Socks5UserPassOnlyOfferedWithoutUsersGets05FF) {
  const user_store users;
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x01, 0x02));
    co_await expect_reply(bv(0x05, 0xFF));
  });
  EXPECT_EQ(r.ec, socks_errc::no_acceptable_method);
}

TEST_F(HandshakeTest, Socks5ZeroMethodsGets05FF) {
  const user_store users;
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x00));
    co_await expect_reply(bv(0x05, 0xFF));
  });
  EXPECT_EQ(r.ec, socks_errc::no_acceptable_method);
}

TEST_F(HandshakeTest, Socks5ConnectInsteadOfAuthGetsFailureStatus) {
  const std::vector<credential> creds{{"alice", "s3cret"}};
  const user_store users(creds);
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x01, 0x02));
    co_await expect_reply(bv(0x05, 0x02));
    co_await send(connect_v4);  // skips RFC 1929
    co_await expect_reply(bv(0x01, 0x01));
  });
  EXPECT_EQ(r.ec, socks_errc::auth_failed) << r.ec.message();
  EXPECT_EQ(r.user, nullptr);
  EXPECT_FALSE(r.target_known) << "the bytes were not taken as a request";
  EXPECT_TRUE(auth_calls.empty()) << "malformed credentials never reach the authenticator";
  expect_nothing_more_written();
}

TEST_F(HandshakeTest, Socks5PipelinedGreetingAuthRequestPayload) {
  const std::vector<credential> creds{{"bob", "pw"}};
  const user_store users(creds);
  const bytevec payload = str_bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(catv(bv(0x05, 0x01, 0x02), auth_msg("bob", "pw"), connect_v4, payload));
    co_await expect_reply(bv(0x05, 0x02, 0x01, 0x00));
  });
  EXPECT_FALSE(r.ec) << r.ec.message();
  ASSERT_NE(r.user, nullptr);
  EXPECT_EQ(r.user->name, "bob");
  EXPECT_TRUE(r.target_known);
  const auto pending = buf.pending();
  EXPECT_EQ(bytevec(pending.begin(), pending.end()), payload) << "payload must stay in the buffer";
  expect_nothing_more_written();
}

TEST_F(HandshakeTest, Socks5PipelinedWithSlowAuthenticator) {
  // The request and payload arrive while authentication is still running
  // (an off-loop argon2 check): nothing may be lost or taken as credentials.
  const std::vector<credential> creds{{"bob", "pw"}};
  const user_store users(creds);
  const bytevec payload(64, 0x17);
  const auto r = run(
      users,
      [&]() -> asio::awaitable<void> {
        co_await send(catv(bv(0x05, 0x01, 0x02), auth_msg("bob", "pw"), connect_v4, payload));
        co_await expect_reply(bv(0x05, 0x02, 0x01, 0x00));
      },
      std::chrono::milliseconds(50));
  EXPECT_FALSE(r.ec) << r.ec.message();
  ASSERT_EQ(auth_calls.size(), 1u);
  EXPECT_EQ(auth_calls[0].first, "bob");
  EXPECT_EQ(auth_calls[0].second, "pw");
  EXPECT_TRUE(r.target_known);
  EXPECT_EQ(buf.pending().size(), payload.size());
}

TEST_F(HandshakeTest, Socks5PipelinedMaximalMessages) {
  // Largest greeting + largest auth + largest request + payload in one write.
  const std::string u(255, 'u');
  const std::string p(255, 'p');
  const std::vector<credential> creds{{u, p}};
  const user_store users(creds);
  bytevec greeting = bv(0x05, 0xFF);
  for (int m = 0; m < 255; ++m) {
    greeting.push_back(static_cast<std::uint8_t>(m));
  }
  const std::string host(255, 'h');
  const bytevec request = catv(bv(0x05, 0x01, 0x00, 0x03, 255), str_bytes(host), bv(0x00, 0x50));
  const bytevec payload(500, 0x42);
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(catv(greeting, auth_msg(u, p), request, payload));
    co_await expect_reply(bv(0x05, 0x02, 0x01, 0x00));
  });
  EXPECT_FALSE(r.ec) << r.ec.message();
  ASSERT_TRUE(r.target_known);
  EXPECT_EQ(r.target.port, 80);
  EXPECT_EQ(buf.pending().size(), payload.size());
}

TEST_F(HandshakeTest, Socks5ByteByByte) {
  const std::vector<credential> creds{{"c", "d"}};
  const user_store users(creds);
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    auto dribble = [&](const bytevec& msg) -> asio::awaitable<void> {
      for (auto byte : msg) {
        const bytevec one(1, byte);
        co_await send(one);
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
      }
    };
    co_await dribble(bv(0x05, 0x02, 0x00, 0x02));
    co_await expect_reply(bv(0x05, 0x02));
    co_await dribble(auth_msg("c", "d"));
    co_await expect_reply(bv(0x01, 0x00));
    co_await dribble(catv(bv(0x05, 0x01, 0x00, 0x03, 7), str_bytes("example"), bv(0x01, 0x00)));
  });
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(core::to_string(r.target), "example:256");
}

TEST_F(HandshakeTest, Socks5MalformedRequestIsOwedAReply) {
  const user_store users;
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x01, 0x00));
    co_await expect_reply(bv(0x05, 0x00));
    co_await send(bv(0x05, 0x01, 0x00, 0x09));  // unknown ATYP: no more bytes needed
  });
  EXPECT_EQ(r.ec, socks_errc::address_type_not_supported) << r.ec.message();
  EXPECT_TRUE(r.reply_due);
  EXPECT_FALSE(r.target_known);
  EXPECT_EQ(core::to_reply_code(r.ec), core::reply_code::address_type_not_supported);
}

TEST_F(HandshakeTest, Socks5UnknownCommandIsOwedAReply) {
  const user_store users;
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(catv(bv(0x05, 0x01, 0x00), bv(0x05, 0x09)));
    co_await expect_reply(bv(0x05, 0x00));
  });
  EXPECT_EQ(r.ec, socks_errc::command_not_supported);
  EXPECT_TRUE(r.reply_due);
  EXPECT_EQ(core::to_reply_code(r.ec), core::reply_code::command_not_supported);
}

TEST_F(HandshakeTest, ClientHangsUpMidGreeting) {
  const user_store users;
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x02, 0x00));  // one method short
    client.shutdown(tcp::socket::shutdown_send);
  });
  EXPECT_EQ(r.ec, asio::error::eof) << r.ec.message();
  EXPECT_FALSE(r.reply_due) << "a dropped connection is not answered";
  EXPECT_EQ(r.proto, client_protocol::socks5);
}

TEST_F(HandshakeTest, ClientHangsUpMidRequest) {
  const user_store users;
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(bv(0x05, 0x01, 0x00));
    co_await expect_reply(bv(0x05, 0x00));
    co_await send(bv(0x05, 0x01, 0x00, 0x01, 1, 2));
    client.shutdown(tcp::socket::shutdown_send);
  });
  EXPECT_EQ(r.ec, asio::error::eof);
  EXPECT_FALSE(r.reply_due);
  EXPECT_FALSE(r.target_known);
}

TEST_F(HandshakeTest, ClientHangsUpImmediately) {
  const user_store users;
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    client.shutdown(tcp::socket::shutdown_send);
    co_return;
  });
  EXPECT_EQ(r.ec, asio::error::eof);
  EXPECT_EQ(r.proto, client_protocol::unknown);
}

TEST_F(HandshakeTest, NotSocksIsRefusedSilently) {
  const user_store users;
  const auto r = run(users, [&]() -> asio::awaitable<void> { co_await send(str_bytes("GET / HTTP/1.1\r\n\r\n")); });
  EXPECT_EQ(r.ec, socks_errc::bad_version);
  EXPECT_EQ(r.proto, client_protocol::unknown);
  EXPECT_FALSE(r.reply_due);
  expect_nothing_more_written();
}

TEST_F(HandshakeTest, Socks4WithoutUsers) {
  const user_store users;
  const bytevec payload = str_bytes("hello");
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(catv(bv(0x04, 0x01, 0x00, 0x50, 192, 0, 2, 1), str_bytes("me"), bv(0), payload));
  });
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.proto, client_protocol::socks4);
  EXPECT_EQ(r.cmd, cs::session::command::connect);
  EXPECT_EQ(core::to_string(r.target), "192.0.2.1:80");
  const auto pending = buf.pending();
  EXPECT_EQ(bytevec(pending.begin(), pending.end()), payload);
  expect_nothing_more_written();
}

TEST_F(HandshakeTest, Socks4aBind) {
  const user_store users;
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(catv(bv(0x04, 0x02, 0x00, 0x15, 0, 0, 0, 7, 0), str_bytes("ftp.example"), bv(0)));
  });
  EXPECT_FALSE(r.ec);
  EXPECT_EQ(r.cmd, cs::session::command::bind);
  EXPECT_EQ(core::to_string(r.target), "ftp.example:21");
}

TEST_F(HandshakeTest, Socks4WithUsersIsRefusedAndOwedAReply) {
  const std::vector<credential> creds{{"alice", "s3cret"}};
  const user_store users(creds);
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(catv(bv(0x04, 0x01, 0x00, 0x50, 192, 0, 2, 1), str_bytes("alice"), bv(0)));
  });
  EXPECT_EQ(r.ec, socks_errc::auth_required);
  EXPECT_TRUE(r.reply_due);
  EXPECT_EQ(r.proto, client_protocol::socks4);
  EXPECT_EQ(r.user, nullptr);
  expect_nothing_more_written();
}

TEST_F(HandshakeTest, Socks4OverlongUseridIsOwedAReply) {
  const user_store users;
  const auto r = run(users, [&]() -> asio::awaitable<void> {
    co_await send(catv(bv(0x04, 0x01, 0x00, 0x50, 1, 2, 3, 4), bytevec(300, 'u')));
  });
  EXPECT_EQ(r.ec, socks_errc::field_too_long);
  EXPECT_TRUE(r.reply_due);
}

TEST_F(HandshakeTest, BytesAlreadyInTheBufferAreUsedFirst) {
  // run_handshake must parse what the caller already read before reading.
  const user_store users;
  const bytevec pre = catv(bv(0x05, 0x01, 0x00), connect_v4);
  std::copy(pre.begin(), pre.end(), buf.free_space().begin());
  buf.end = pre.size();
  const auto r = run(users, [&]() -> asio::awaitable<void> { co_await expect_reply(bv(0x05, 0x00)); });
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_TRUE(r.target_known);
  EXPECT_TRUE(buf.pending().empty());
}

}  // namespace
