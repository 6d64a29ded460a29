#include "policy/geoip.hpp"

#include <maxminddb.h>
#include <netinet/in.h>

#include <cstring>
#include <stdexcept>

namespace cs::policy {

struct geoip::impl {
  MMDB_s db{};
};

geoip::geoip(const std::string& path) : impl_(std::make_unique<impl>()), path_(path) {
  const int status = MMDB_open(path.c_str(), MMDB_MODE_MMAP, &impl_->db);
  if (status != MMDB_SUCCESS) {
    throw std::runtime_error("cannot open GeoIP database '" + path + "': " + MMDB_strerror(status));
  }
}

geoip::~geoip() { MMDB_close(&impl_->db); }

std::optional<std::array<char, 2>> geoip::country(const core::ip::address& raw) const noexcept {
  const auto a = core::unmap(raw);
  sockaddr_storage ss{};
  if (a.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    const auto b = a.to_v4().to_bytes();
    std::memcpy(&sin->sin_addr, b.data(), b.size());
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    const auto b = a.to_v6().to_bytes();
    std::memcpy(&sin6->sin6_addr, b.data(), b.size());
  }
  int mmdb_error = MMDB_SUCCESS;
  MMDB_lookup_result_s res =
      MMDB_lookup_sockaddr(&impl_->db, reinterpret_cast<const sockaddr*>(&ss), &mmdb_error);
  if (mmdb_error != MMDB_SUCCESS || !res.found_entry) {
    return std::nullopt;
  }
  for (const char* top : {"country", "registered_country"}) {
    MMDB_entry_data_s data{};
    if (MMDB_get_value(&res.entry, &data, top, "iso_code", nullptr) == MMDB_SUCCESS && data.has_data &&
        data.type == MMDB_DATA_TYPE_UTF8_STRING && data.data_size == 2) {
      return std::array<char, 2>{data.utf8_string[0], data.utf8_string[1]};
    }
  }
  return std::nullopt;
}

}  // namespace cs::policy
