#pragma once
// The relay engines, for parameterised tests: the values and their names
// as the configuration spells them (relay.mode).

#include "relay/tcp_relay.hpp"

#include <gtest/gtest.h>

#include <string>

namespace cs::test {

inline const char* relay_mode_name(relay::relay_mode m) {
  switch (m) {
    case relay::relay_mode::adaptive: return "adaptive";
    case relay::relay_mode::splice: return "splice";
    case relay::relay_mode::copy: return "copy";
  }
  return "?";
}

/// For INSTANTIATE_TEST_SUITE_P's name generator.
inline std::string relay_mode_param_name(const ::testing::TestParamInfo<relay::relay_mode>& info) {
  return relay_mode_name(info.param);
}

}  // namespace cs::test
