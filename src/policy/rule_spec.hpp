#pragma once
// Parsing of the textual pieces of access rules: CIDRs, domain patterns,
// port ranges, country codes, and the one-line SPEC of --allow/--deny.
// Pure functions: no I/O, no exceptions; errors come back as text.

#include "policy/acl.hpp"

#include <string>
#include <string_view>

namespace cs::policy {

/// "80", "1000-2000", "*". Ports are 1..65535 except that "*" is 0-65535.
bool parse_port_range(std::string_view text, port_range& out);

/// "example.com", "*.example.com", ".example.com", "*" (see domain_pattern).
/// Labels: letters, digits, '-' and '_'; at most 253 characters.
bool parse_domain_pattern(std::string_view text, domain_pattern& out, std::string* error = nullptr);

/// An IP, CIDR or domain pattern, appended to the rule's destinations.
/// "*" adds nothing (any destination).
bool parse_destination(std::string_view text, rule& out, std::string* error = nullptr);

/// Two ASCII letters; stored upper-case.
bool parse_country(std::string_view text, std::string& out);

/// "connect", "bind", "udp" (also "udp_associate"), or "*"; ORed into `bits`.
bool parse_command(std::string_view text, std::uint8_t& bits);

/// The SPEC of --allow / --deny. Two forms:
///   DEST[:PORTS]        10.0.0.0/8   ::1   [fe80::/10]:22   localhost:8080   *.corp.example:443   *:25
///   key=value ...       "dst=10.0.0.0/8,example.com port=80,443 user=alice,@ops src=127.0.0.2 cmd=connect country=GB"
/// Keys: dst|to, src|from, port|ports, user|users, cmd|command, country|countries, name.
/// Returns an empty string on success, else what is wrong.
std::string parse_rule_spec(std::string_view text, action act, rule& out);

}  // namespace cs::policy
