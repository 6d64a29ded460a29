#include "core/address.hpp"

#include <array>
#include <charconv>

namespace cs::core {

namespace {

// "a.b.c.d:port" with std::to_chars. address_v4::to_string goes through
// inet_ntop, which formats with sprintf: ~2,000 instructions a call under
// callgrind, and a session formats its client, target and dialled address.
std::string v4_to_string(const ip::address_v4& a, std::uint16_t port) {
  std::array<char, 21> buf{};  // "255.255.255.255:65535"
  char* p = buf.data();
  const auto bytes = a.to_bytes();
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i != 0) {
      *p++ = '.';
    }
    p = std::to_chars(p, p + 3, bytes[i]).ptr;  // bounded by its widest, so every path stays inside buf
  }
  *p++ = ':';
  p = std::to_chars(p, p + 5, port).ptr;
  return std::string(buf.data(), p);
}

}  // namespace

std::string to_string(const ip::address& a, std::uint16_t port) {
  const ip::address plain = unmap(a);
  if (plain.is_v4()) {
    return v4_to_string(plain.to_v4(), port);
  }
  std::string out;
  out.reserve(48);
  out += '[';
  out += plain.to_string();
  out += "]:";
  out += std::to_string(port);
  return out;
}

std::string to_string(const ip::tcp::endpoint& ep) { return to_string(ep.address(), ep.port()); }
std::string to_string(const ip::udp::endpoint& ep) { return to_string(ep.address(), ep.port()); }

std::string to_string(const target_address& t) {
  if (const auto* d = t.domain()) {
    std::string out(d->data(), d->size());
    out += ':';
    out += std::to_string(t.port);
    return out;
  }
  return to_string(*t.ip_address(), t.port);
}

ip::address unmap(const ip::address& a) noexcept {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  }
  return a;
}

namespace {

bool parse_port(std::string_view text, std::uint16_t& port) {
  if (text.empty() || text.size() > 5) {
    return false;
  }
  unsigned value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size() || value > 65535) {
    return false;
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}

// Splits "host:port" / "[v6]:port" into host text (without brackets) and port text.
bool split_host_port(std::string_view text, std::string_view& host, std::string_view& port,
                     bool& bracketed) {
  bracketed = false;
  // make_address() reads a C string: a NUL would hide whatever follows it.
  if (text.find('\0') != std::string_view::npos) {
    return false;
  }
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return false;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    bracketed = true;
    return true;
  }
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return false;
  }
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  // An unbracketed IPv6 literal is ambiguous ("::1:80"); refuse it.
  return host.find(':') == std::string_view::npos;
}

}  // namespace

bool parse_endpoint(std::string_view text, ip::tcp::endpoint& out, bool allow_zero_port) {
  std::string_view host;
  std::string_view port_text;
  bool bracketed = false;
  std::uint16_t port = 0;
  if (!split_host_port(text, host, port_text, bracketed) || !parse_port(port_text, port)) {
    return false;
  }
  if (port == 0 && !allow_zero_port) {
    return false;
  }
  boost::system::error_code ec;
  const auto addr = ip::make_address(std::string(host), ec);
  if (ec || addr.is_v6() != bracketed) {
    return false;
  }
  out = ip::tcp::endpoint(addr, port);
  return true;
}

bool parse_target(std::string_view text, target_address& out) {
  std::string_view host;
  std::string_view port_text;
  bool bracketed = false;
  std::uint16_t port = 0;
  if (!split_host_port(text, host, port_text, bracketed) || !parse_port(port_text, port) ||
      host.empty() || host.size() > domain_name::static_capacity) {
    return false;
  }
  boost::system::error_code ec;
  const auto addr = ip::make_address(std::string(host), ec);
  if (!ec) {
    if (addr.is_v6() != bracketed) {
      return false;
    }
    out.host = addr;
  } else {
    if (bracketed) {
      return false;
    }
    out.host = domain_name(host.data(), host.size());
  }
  out.port = port;
  return true;
}

}  // namespace cs::core
