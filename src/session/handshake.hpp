#pragma once
// The client side of a session up to a parsed request: protocol detection,
// SOCKS5 method negotiation and RFC 1929 authentication, SOCKS4/4a request.
// Drives the pure parsers in protocol/ over bytes read from the socket.

#include "auth/user_store.hpp"
#include "core/address.hpp"
#include "core/bytes.hpp"
#include "core/error.hpp"
#include "protocol/proxy_protocol.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <array>
#include <cstdint>

namespace cs::session {

using tcp = boost::asio::ip::tcp;

enum class client_protocol : std::uint8_t { unknown, socks4, socks5 };
using core::command;

std::string_view to_string(client_protocol p) noexcept;
std::string_view to_string(command c) noexcept;

/// Bytes read from the client but not yet consumed. Large enough for a
/// greeting, an RFC 1929 request and a request back to back (the largest
/// pipelined handshake, 1,032 bytes) plus the first payload bytes, which the
/// session forwards to the target after connecting.
struct handshake_buffer {
  static constexpr std::size_t capacity = 2048;
  std::array<std::uint8_t, capacity> data;
  std::size_t begin = 0;
  std::size_t end = 0;

  core::byte_view pending() const noexcept { return {data.data() + begin, end - begin}; }
  void consume(std::size_t n) noexcept;
  /// Free space after the pending bytes (moved to the front first).
  core::byte_span free_space() noexcept;
};

struct handshake_result {
  core::error_code ec;  ///< empty on success
  client_protocol proto = client_protocol::unknown;
  command cmd = command::connect;
  core::target_address target;
  bool target_known = false;  ///< a request was parsed (target valid)
  const auth::user* user = nullptr;
  /// On failure: the client is owed an error reply in its request format
  /// (the failure happened at or after the request). Earlier failures have
  /// been answered in-protocol already (05 FF, 01 01) or need no answer.
  bool reply_due = false;
};

/// Checks RFC 1929 credentials for the handshake (the session supplies
/// throttling, caching and off-loop hashing).
class authenticator {
 public:
  virtual ~authenticator() = default;
  /// Whether credentials are required (users are configured).
  virtual bool required() const noexcept = 0;
  /// The user, or nullptr to refuse.
  virtual boost::asio::awaitable<const auth::user*> authenticate(std::string_view name,
                                                                 std::string_view password) = 0;
  /// The RFC 1929 exchange has its verdict (a malformed request is a
  /// refusal); called before the client is told, so whatever is counted
  /// here is visible to anyone the reply reaches.
  virtual void decided(bool /*accepted*/) noexcept {}
};

/// Reads a PROXY protocol header (v1 and/or v2 as allowed) from the start
/// of the connection. Returns the parse result; `out` is set when done.
boost::asio::awaitable<protocol::parse_result> read_proxy_header(tcp::socket& client, handshake_buffer& buf,
                                                                 bool allow_v1, bool allow_v2,
                                                                 protocol::proxy::header& out);

/// Runs the handshake. Never throws for network or protocol errors; the
/// caller bounds it with the handshake deadline (cancellation).
boost::asio::awaitable<handshake_result> run_handshake(tcp::socket& client, handshake_buffer& buf,
                                                       authenticator& auth);

}  // namespace cs::session
