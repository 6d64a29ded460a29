// core::parse_endpoint and core::parse_target over arbitrary text.
//
// Invariants: a parsed endpoint/target prints (core::to_string) to text that
// parses back to the same value (IPv4-mapped addresses print as IPv4); a
// parsed endpoint is also a valid target with the same address; refusing
// port 0 never yields port 0; a domain target is 1..255 bytes, has no NUL,
// no ':' and does not start with '['. core::read_name: an address it reads
// prints as a canonical literal that reads back to itself; without a ':' it
// is IPv4; a name it leaves to DNS does not end in an all-digit label.
#include "fuzz_common.hpp"

#include <string>
#include <string_view>

namespace core = cs::core;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  core::ip::tcp::endpoint ep;
  const bool ep_ok = core::parse_endpoint(text, ep);
  core::ip::tcp::endpoint ep_nz;
  const bool ep_nz_ok = core::parse_endpoint(text, ep_nz, false);
  FUZZ_CHECK(ep_nz_ok == (ep_ok && ep.port() != 0));
  if (ep_nz_ok) {
    FUZZ_CHECK(ep_nz == ep);
  }
#ifdef CS_FUZZ_STRICT_NUL
  // Documented contract, violated today (see
  // tests/unit/core/address_test.cpp DISABLED_NulAfterHostLiteralIsRefused).
  if (text.find('\0') != std::string_view::npos) {
    FUZZ_CHECK(!ep_ok);
  }
#endif
  if (ep_ok) {
    const std::string printed = core::to_string(ep);
    core::ip::tcp::endpoint back;
    FUZZ_CHECK(core::parse_endpoint(printed, back));
    FUZZ_CHECK(back.port() == ep.port() && back.address() == core::unmap(ep.address()));

    // parse_target caps the host at 255 bytes (a scoped IPv6 literal such
    // as "[fe80::1%000…1]:80" can be longer and still be an endpoint).
    if (size <= 255) {
      core::target_address t;
      FUZZ_CHECK(core::parse_target(text, t));
      FUZZ_CHECK(!t.is_domain() && *t.ip_address() == ep.address() && t.port == ep.port());
    }
  }

  core::ip::address named;
  const auto form = core::read_name(text, named);
  if (form == core::name_form::address) {
    FUZZ_CHECK(named == core::unmap(named));
    FUZZ_CHECK(named.is_v4() || text.find(':') != std::string_view::npos);
    core::ip::address again;
    FUZZ_CHECK(core::read_name(named.to_string(), again) == core::name_form::address && again == named);
  } else if (form == core::name_form::dns_name && text.find(':') == std::string_view::npos) {
    std::string_view body = text;
    if (!body.empty() && body.back() == '.') {
      body.remove_suffix(1);
    }
    const std::string_view last = body.substr(body.rfind('.') == std::string_view::npos ? 0 : body.rfind('.') + 1);
    FUZZ_CHECK(last.empty() || last.find_first_not_of("0123456789") != std::string_view::npos);
  }

  core::target_address t;
  if (!core::parse_target(text, t)) {
    return 0;
  }
  if (const auto* d = t.domain()) {
    const std::string_view name(d->data(), d->size());
    FUZZ_CHECK(!name.empty() && name.size() <= 255);
    FUZZ_CHECK(name.find('\0') == std::string_view::npos);
    FUZZ_CHECK(name.find(':') == std::string_view::npos);
    FUZZ_CHECK(name.front() != '[');
  }
#ifdef CS_FUZZ_STRICT_NUL
  FUZZ_CHECK(text.find('\0') == std::string_view::npos);
#endif
  const std::string printed = core::to_string(t);
  core::target_address back;
  FUZZ_CHECK(core::parse_target(printed, back));
  FUZZ_CHECK(cs::fuzz::same_target(back, t));
  FUZZ_CHECK(core::to_string(back) == printed);
  return 0;
}
