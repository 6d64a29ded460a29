#include "policy/rule_spec.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace cs::policy {

namespace {

bool parse_u16(std::string_view t, std::uint16_t& out) {
  unsigned v = 0;
  const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc{} || ptr != t.data() + t.size() || v > 65535) {
    return false;
  }
  out = static_cast<std::uint16_t>(v);
  return true;
}

template <typename F>
bool for_each_item(std::string_view list, F f) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    const auto item = list.substr(0, comma);
    if (item.empty() || !f(item)) {
      return false;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
    if (list.empty()) {
      return false;  // trailing comma
    }
  }
  return true;
}

bool parse_ports_into(std::string_view text, rule& out) {
  return for_each_item(text, [&](std::string_view item) {
    port_range p;
    if (!parse_port_range(item, p)) {
      return false;
    }
    out.ports.push_back(p);
    return true;
  });
}

}  // namespace

bool parse_port_range(std::string_view text, port_range& out) {
  if (text == "*") {
    out = {0, 65535};
    return true;
  }
  const auto dash = text.find('-');
  std::uint16_t lo = 0;
  std::uint16_t hi = 0;
  if (dash == std::string_view::npos) {
    if (!parse_u16(text, lo) || lo == 0) {
      return false;
    }
    hi = lo;
  } else if (!parse_u16(text.substr(0, dash), lo) || !parse_u16(text.substr(dash + 1), hi) || lo == 0 ||
             lo > hi) {
    return false;
  }
  out = {lo, hi};
  return true;
}

bool parse_domain_pattern(std::string_view text, domain_pattern& out, std::string* error) {
  auto fail = [&](const char* why) {
    if (error != nullptr) {
      *error = why;
    }
    return false;
  };
  if (text == "*") {
    out = {domain_pattern::kind::any, {}};
    return true;
  }
  auto k = domain_pattern::kind::exact;
  if (text.starts_with("*.")) {
    k = domain_pattern::kind::subdomains;
    text.remove_prefix(2);
  } else if (text.starts_with('.')) {
    k = domain_pattern::kind::domain_and_subdomains;
    text.remove_prefix(1);
  }
  if (text.ends_with('.')) {
    text.remove_suffix(1);
  }
  if (text.empty() || text.size() > 253) {
    return fail("empty or over-long domain name");
  }
  std::size_t label = 0;
  for (const char c : text) {
    if (c == '.') {
      if (label == 0) {
        return fail("empty label in domain name");
      }
      label = 0;
      continue;
    }
    if (!(std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_')) {
      return fail("invalid character in domain pattern (wildcards only as a leading '*.')");
    }
    if (++label > 63) {
      return fail("domain label longer than 63 characters");
    }
  }
  if (label == 0) {
    return fail("empty label in domain name");
  }
  out = {k, normalise_host(text)};
  return true;
}

bool parse_destination(std::string_view text, rule& out, std::string* error) {
  if (text == "*") {
    // Any destination, also inside a list ("dst=*,10.0.0.0/8"): every name
    // and every address. (A /0 is never specific enough to lift a built-in
    // block.)
    out.dst_domains.push_back({domain_pattern::kind::any, {}});
    out.dst_cidrs.push_back({core::ip::make_address("0.0.0.0"), 0});
    out.dst_cidrs.push_back({core::ip::make_address("::"), 0});
    return true;
  }
  if (text.empty()) {
    if (error != nullptr) {
      *error = "empty destination (use * for any)";
    }
    return false;
  }
  const bool looks_ip = text.find(':') != std::string_view::npos ||
                        std::all_of(text.begin(), text.end(), [](char c) {
                          return std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '/';
                        });
  if (looks_ip) {
    cidr c;
    if (!parse_cidr(text, c, error)) {
      return false;
    }
    out.dst_cidrs.push_back(c);
    return true;
  }
  domain_pattern p;
  if (!parse_domain_pattern(text, p, error)) {
    return false;
  }
  out.dst_domains.push_back(std::move(p));
  return true;
}

bool parse_country(std::string_view text, std::string& out) {
  if (text.size() != 2 || std::isalpha(static_cast<unsigned char>(text[0])) == 0 ||
      std::isalpha(static_cast<unsigned char>(text[1])) == 0) {
    return false;
  }
  out = {static_cast<char>(std::toupper(static_cast<unsigned char>(text[0]))),
         static_cast<char>(std::toupper(static_cast<unsigned char>(text[1])))};
  return true;
}

bool parse_command(std::string_view text, std::uint8_t& bits) {
  if (text == "connect") {
    bits |= command_bits::connect;
  } else if (text == "bind") {
    bits |= command_bits::bind;
  } else if (text == "udp" || text == "udp_associate") {
    bits |= command_bits::udp;
  } else if (text == "*") {
    bits |= command_bits::all;
  } else {
    return false;
  }
  return true;
}

std::string parse_rule_spec(std::string_view text, action act, rule& out) {
  out = rule{};
  out.act = act;
  out.name = std::string(act == action::allow ? "--allow " : "--deny ") + std::string(text.substr(0, 200));
  if (text.empty()) {
    return "empty rule";
  }
  std::string err;
  if (text.find('=') != std::string_view::npos) {
    // key=value form
    std::size_t pos = 0;
    while (pos < text.size()) {
      while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos])) != 0) {
        ++pos;
      }
      if (pos >= text.size()) {
        break;
      }
      auto end = pos;
      while (end < text.size() && std::isspace(static_cast<unsigned char>(text[end])) == 0) {
        ++end;
      }
      const auto token = text.substr(pos, end - pos);
      pos = end;
      const auto eq = token.find('=');
      if (eq == std::string_view::npos || eq == 0 || eq + 1 == token.size()) {
        return "expected key=value, got '" + std::string(token) + "'";
      }
      const auto key = token.substr(0, eq);
      const auto value = token.substr(eq + 1);
      bool ok = true;
      if (key == "dst" || key == "to") {
        ok = for_each_item(value, [&](std::string_view v) { return parse_destination(v, out, &err); });
      } else if (key == "src" || key == "from") {
        ok = for_each_item(value, [&](std::string_view v) {
          cidr c;
          if (!parse_cidr(v, c, &err)) {
            return false;
          }
          out.src.push_back(c);
          return true;
        });
      } else if (key == "port" || key == "ports") {
        ok = parse_ports_into(value, out);
        err = "invalid port or port range";
      } else if (key == "user" || key == "users") {
        ok = for_each_item(value, [&](std::string_view v) {
          out.users.emplace_back(v);
          return true;
        });
      } else if (key == "cmd" || key == "command") {
        out.commands = 0;
        ok = for_each_item(value, [&](std::string_view v) { return parse_command(v, out.commands); });
        err = "command must be connect, bind, udp or *";
      } else if (key == "country" || key == "countries") {
        ok = for_each_item(value, [&](std::string_view v) {
          std::string cc;
          if (!parse_country(v, cc)) {
            return false;
          }
          out.countries.push_back(cc);
          return true;
        });
        err = "country must be a two-letter ISO 3166-1 code";
      } else if (key == "name") {
        out.name = std::string(value);
      } else {
        return "unknown key '" + std::string(key) + "' (dst, src, port, user, cmd, country, name)";
      }
      if (!ok) {
        return std::string(key) + ": " + (err.empty() ? "invalid value" : err) + " in '" + std::string(value) + "'";
      }
    }
    return {};
  }

  // DEST[:PORTS]
  std::string_view dest = text;
  std::string_view ports;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return "missing ']'";
    }
    dest = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || rest.size() == 1) {
        return "expected ':PORT' after ']'";
      }
      ports = rest.substr(1);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    const auto colon = text.find(':');
    dest = text.substr(0, colon);
    ports = text.substr(colon + 1);
    if (ports.empty()) {
      return "missing port after ':'";
    }
  }
  if (dest.empty()) {
    return "empty destination (write *:PORT for any destination)";
  }
  if (dest != "*" && !parse_destination(dest, out, &err)) {
    return "'" + std::string(dest) + "': " + err;
  }
  if (!ports.empty() && !parse_ports_into(ports, out)) {
    return "invalid port '" + std::string(ports) + "' (PORT, LOW-HIGH or *)";
  }
  return {};
}

}  // namespace cs::policy
