// policy/geoip: country lookups against MaxMind's test databases
// (tests/data/geoip/; expectations from GeoLite2-Country-Test.source.json).

#include "policy/geoip.hpp"

#include "policy_support.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>

namespace {

using cs::policy::geoip;
using namespace cs::test::policy;
namespace ip = cs::core::ip;

std::string cc(const geoip& g, const char* address) {
  const auto c = g.country(ip::make_address(address));
  return c ? std::string(c->data(), 2) : std::string("none");
}

TEST(GeoIp, TestDatabaseIsInTheRepository) {
  std::ifstream f(geoip_country_db(), std::ios::binary);
  ASSERT_TRUE(f.good()) << geoip_country_db() << " missing (copy it from the MaxMind test data)";
}

TEST(GeoIp, CountryLookups) {
  const geoip g(geoip_country_db());
  EXPECT_EQ(g.path(), geoip_country_db());
  EXPECT_EQ(cc(g, "2.125.160.216"), "GB");
  EXPECT_EQ(cc(g, "2.125.160.223"), "GB");
  EXPECT_EQ(cc(g, "81.2.69.142"), "GB");
  EXPECT_EQ(cc(g, "81.2.69.160"), "GB");
  EXPECT_EQ(cc(g, "89.160.20.113"), "SE");
  EXPECT_EQ(cc(g, "89.160.20.200"), "SE");
  EXPECT_EQ(cc(g, "50.114.0.1"), "US");
  EXPECT_EQ(cc(g, "67.43.156.1"), "BT");
  EXPECT_EQ(cc(g, "111.235.160.1"), "CN");
  EXPECT_EQ(cc(g, "217.65.48.1"), "GI");
  EXPECT_EQ(cc(g, "2001:218::1"), "JP");
  EXPECT_EQ(cc(g, "2001:220::1"), "KR");
  EXPECT_EQ(cc(g, "2a02:cf40::1"), "NO");
}

TEST(GeoIp, CountryBeatsRegisteredCountry) {
  const geoip g(geoip_country_db());
  EXPECT_EQ(cc(g, "216.160.83.57"), "US") << "located in US, registered in GB";
  EXPECT_EQ(cc(g, "2.125.160.217"), "GB") << "located in GB, registered in FR";
}

TEST(GeoIp, MappedAddressesAreLookedUpAsV4) {
  const geoip g(geoip_country_db());
  EXPECT_EQ(cc(g, "::ffff:2.125.160.217"), "GB");
  EXPECT_EQ(cc(g, "::ffff:89.160.20.113"), "SE");
}

TEST(GeoIp, NoAnswer) {
  const geoip g(geoip_country_db());
  EXPECT_EQ(cc(g, "2.125.160.224"), "none") << "just outside 2.125.160.216/29";
  EXPECT_EQ(cc(g, "2.125.160.215"), "none");
  EXPECT_EQ(cc(g, "127.0.0.1"), "none");
  EXPECT_EQ(cc(g, "10.0.0.1"), "none");
  EXPECT_EQ(cc(g, "203.0.113.1"), "none");
  EXPECT_EQ(cc(g, "::1"), "none");
  EXPECT_EQ(cc(g, "2a02:d500::1"), "none") << "an entry with a continent only";
}

TEST(GeoIp, CityDatabaseWorksToo) {
  const geoip g(geoip_city_db());
  EXPECT_EQ(cc(g, "2.125.160.217"), "GB");
  EXPECT_EQ(cc(g, "89.160.20.113"), "SE");
  EXPECT_EQ(cc(g, "203.0.113.1"), "none");
}

TEST(GeoIp, OpenErrorsNameTheFile) {
  const std::string missing = (data_dir() / "geoip" / "no-such-file.mmdb").string();
  try {
    geoip g(missing);
    FAIL() << "opened a missing file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  const std::string not_mmdb = (data_dir() / "geoip" / "README.md").string();
  try {
    geoip g(not_mmdb);
    FAIL() << "opened a text file as a MaxMind DB";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(not_mmdb), std::string::npos) << e.what();
  }
}

}  // namespace
