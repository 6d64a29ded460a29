#include "core/address.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>

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

// One part of a numeric host (WHATWG "IPv4 number parser"): decimal, octal
// after a leading 0, hex after 0x. "0x" without digits is no number, as for
// inet_aton (the URL standard reads it as 0). Values that pass 2^32 are
// capped there: no valid address can hold them.
std::optional<std::uint64_t> ipv4_number(std::string_view part) {
  if (part.empty()) {
    return std::nullopt;
  }
  unsigned radix = 10;
  if (part.size() >= 2 && part[0] == '0' && (part[1] == 'x' || part[1] == 'X')) {
    part.remove_prefix(2);
    radix = 16;
    if (part.empty()) {
      return std::nullopt;
    }
  } else if (part.size() >= 2 && part[0] == '0') {
    part.remove_prefix(1);
    radix = 8;
  }
  constexpr std::uint64_t cap = std::uint64_t{1} << 32;
  std::uint64_t value = 0;
  for (const char c : part) {
    unsigned digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a') + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = static_cast<unsigned>(c - 'A') + 10;
    } else {
      return std::nullopt;
    }
    if (digit >= radix) {
      return std::nullopt;
    }
    value = std::min(value * radix + digit, cap);
  }
  return value;
}

}  // namespace

name_form read_name(std::string_view name, ip::address& out) {
  if (name.find(':') != std::string_view::npos) {
    if (name.find('\0') == std::string_view::npos) {  // make_address reads a C string
      boost::system::error_code ec;
      const auto a = ip::make_address(std::string(name), ec);
      if (!ec) {
        out = unmap(a);
        return name_form::address;
      }
    }
    return name_form::dns_name;
  }
  // WHATWG "ends in a number": the last label (a trailing dot dropped) is
  // all digits, or parses as an IPv4 number (hex).
  std::string_view body = name;
  if (!body.empty() && body.back() == '.') {
    body.remove_suffix(1);
  }
  const auto dot = body.rfind('.');
  const std::string_view last = dot == std::string_view::npos ? body : body.substr(dot + 1);
  const bool digits = !last.empty() && std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!body.empty() && (digits || ipv4_number(last))) {
    std::array<std::uint64_t, 4> parts{};
    std::size_t n = 0;
    for (std::size_t start = 0;;) {
      const auto end = body.find('.', start);
      const auto number = ipv4_number(body.substr(start, end == std::string_view::npos ? end : end - start));
      if (n == parts.size() || !number) {
        return name_form::invalid;
      }
      parts[n++] = *number;
      if (end == std::string_view::npos) {
        break;
      }
      start = end + 1;
    }
    // Every part but the last is one byte; the last fills what is left.
    std::uint64_t value = parts[n - 1];
    if (value >= (std::uint64_t{1} << (8 * (5 - n)))) {
      return name_form::invalid;
    }
    for (std::size_t i = 0; i + 1 < n; ++i) {
      if (parts[i] > 255) {
        return name_form::invalid;
      }
      value += parts[i] << (8 * (3 - i));
    }
    out = ip::address_v4(static_cast<std::uint32_t>(value));
    return name_form::address;
  }
  return name_form::dns_name;
}

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
