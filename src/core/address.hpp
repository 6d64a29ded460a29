#pragma once
// Address value types shared by every module: what a client asked to reach
// (a target: IP or domain, plus port) and how endpoints print.

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/static_string/static_string.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace cs::core {

namespace ip = boost::asio::ip;

/// What a client asks the proxy to do (SOCKS CMD).
enum class command : std::uint8_t { connect, bind, udp_associate };

/// A DNS name as carried by SOCKS (1..255 octets). Fixed capacity: parsing a
/// request never allocates.
using domain_name = boost::static_string<255>;

/// The destination a client asked for, before any resolution.
struct target_address {
  std::variant<ip::address, domain_name> host{ip::address{}};
  std::uint16_t port = 0;

  bool is_domain() const noexcept { return std::holds_alternative<domain_name>(host); }
  const domain_name* domain() const noexcept { return std::get_if<domain_name>(&host); }
  const ip::address* ip_address() const noexcept { return std::get_if<ip::address>(&host); }

  friend bool operator==(const target_address&, const target_address&) = default;
};

/// "1.2.3.4:80", "[::1]:80", "example.com:443".
std::string to_string(const target_address& t);
std::string to_string(const ip::tcp::endpoint& ep);
std::string to_string(const ip::udp::endpoint& ep);
std::string to_string(const ip::address& a, std::uint16_t port);

/// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes the IPv4 address; any
/// other address is returned unchanged. Sockets on dual-stack listeners report
/// mapped addresses; policy and logs want the plain form.
ip::address unmap(const ip::address& a) noexcept;

/// What a name sent where a DNS name goes (SOCKS5 DOMAIN, SOCKS4a) really is.
enum class name_form : std::uint8_t {
  dns_name,  ///< a name for DNS
  address,   ///< an IP address written as a name
  invalid,   ///< reads as an IPv4 address but is not a valid one: no DNS name either
};

/// Reads `name` the way browsers (the WHATWG URL host parser) and
/// inet_aton-based resolvers do: a name whose last label is a number
/// ("0177.0.0.1", "0x7f.1", "127.1", "2130706433", "1.2.3.4.") is an IPv4
/// address whose parts are decimal, octal (leading 0) or hex (0x), never a
/// name to look up; one that breaks that form ("1.2.3.4.5", "09.1.1.1",
/// "1.256.0.0") is invalid. An IPv6 literal ("::1") is an address too. IPv4
/// results are plain (not mapped). Pure and bounded by the name's length.
name_form read_name(std::string_view name, ip::address& out);

/// Parses "IPv4:PORT", "[IPv6]:PORT". Returns false on anything else
/// (including a missing or out-of-range port). `allow_zero_port` admits ":0".
bool parse_endpoint(std::string_view text, ip::tcp::endpoint& out, bool allow_zero_port = true);

/// Parses "HOST:PORT" where HOST is an IPv4 literal, a bracketed IPv6 literal
/// or a DNS name (1..255 chars, no NUL). Returns false otherwise.
bool parse_target(std::string_view text, target_address& out);

}  // namespace cs::core
