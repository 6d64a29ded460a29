#include "config/settings.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace {

using namespace std::chrono_literals;
using cs::config::parse_duration;
using std::chrono::milliseconds;

struct ok_case {
  const char* text;
  milliseconds expected;
};

TEST(ParseDuration, Accepts) {
  const ok_case cases[] = {
      {"10", 10s},        {"1.5", 1500ms},   {"500ms", 500ms}, {"2s", 2s},       {"1m", 1min},
      {"1h", 1h},         {"0", 0ms},        {"0s", 0ms},      {"0ms", 0ms},     {"0.5m", 30s},
      {"1.25h", 75min},   {"1000ms", 1s},    {"0.001", 1ms},   {"90s", 90s},     {"24h", 24h},
      {"3600", 1h},       {"1.5s", 1500ms},  {"007", 7s},
  };
  for (const auto& c : cases) {
    milliseconds out{-42};
    EXPECT_TRUE(parse_duration(c.text, out)) << '"' << c.text << '"';
    EXPECT_EQ(out.count(), c.expected.count()) << '"' << c.text << '"';
  }
}

TEST(ParseDuration, Rejects) {
  const std::string rejects[] = {
      "-1",  "-1s", "-0.5", "",     "s",    "ms",   "m",     "h",     "1x",   "1sec", "1 s", " 1",
      "1 ",  "1ss", "1mss", "nan",  "nans", "NaN",  "inf",   "infs",  "-inf", "1e300", "1e16",
      "9999999999999999999h", "0x10", "1..5", "1,5", "s1",   "1d",    "1hm",  "+1",
  };
  for (const auto& text : rejects) {
    milliseconds out{-42};
    EXPECT_FALSE(parse_duration(text, out)) << '"' << text << '"';
    EXPECT_EQ(out.count(), -42) << "untouched on failure: " << text;
  }
}

TEST(ParseDuration, UpperBoundIsInclusiveOfLargeButFiniteValues) {
  milliseconds out{};
  // 1e15 ms is the documented-by-code ceiling (~31,700 years).
  EXPECT_TRUE(parse_duration("1000000000000ms", out));
  EXPECT_EQ(out.count(), 1'000'000'000'000);
  EXPECT_FALSE(parse_duration("1000000000000001ms", out));
  EXPECT_FALSE(parse_duration("300000h", out) && out.count() < 0) << "no overflow to negative";
}

TEST(ParseDurationMicros, AcceptsMicrosecondsAndEveryOtherUnit) {
  using std::chrono::microseconds;
  const std::pair<const char*, microseconds> cases[] = {
      {"50us", 50us},  {"50\u00b5s", 50us}, {"0us", 0us},     {"1.5us", 2us}, {"0.2ms", 200us},
      {"2ms", 2ms},    {"0.001", 1ms},      {"0.000001", 1us}, {"1s", 1s},    {"1m", 1min},
  };
  for (const auto& [text, expected] : cases) {
    microseconds out{-42};
    EXPECT_TRUE(parse_duration(text, out)) << '"' << text << '"';
    EXPECT_EQ(out.count(), expected.count()) << '"' << text << '"';
  }
  for (const std::string text : {"", "us", "-1us", "1 us", "1uss", "1u", "nanus", "1e16ms"}) {
    microseconds out{-42};
    EXPECT_FALSE(parse_duration(text, out)) << '"' << text << '"';
    EXPECT_EQ(out.count(), -42) << "untouched on failure: " << text;
  }
}

// Millisecond fields keep their grammar: "us" is not one of their units.
TEST(ParseDuration, MicrosecondsAreOnlyForMicrosecondFields) {
  milliseconds out{-42};
  EXPECT_FALSE(parse_duration("500us", out));
  EXPECT_EQ(out.count(), -42);
}

}  // namespace
