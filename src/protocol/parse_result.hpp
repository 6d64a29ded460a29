#pragma once
// The result of every pure parser in protocol/.
//
// Parsers are stateless: they are handed all bytes received so far for the
// current message and either need more, are done (and say how many bytes the
// message used), or fail with an error that maps to a reply code. They never
// read past `in`, never allocate, never throw.

#include "core/error.hpp"

#include <cstddef>
#include <cstdint>

namespace cs::protocol {

enum class parse_status : std::uint8_t { need_more, done, error };

struct parse_result {
  parse_status status = parse_status::need_more;
  std::size_t consumed = 0;  ///< bytes of the message when done; 0 otherwise
  core::error_code ec;       ///< set when status == error

  static constexpr parse_result need_more() noexcept { return {}; }
  static parse_result done(std::size_t n) noexcept { return {parse_status::done, n, {}}; }
  static parse_result fail(core::socks_errc e) noexcept {
    return {parse_status::error, 0, core::make_error_code(e)};
  }

  bool is_done() const noexcept { return status == parse_status::done; }
  bool is_error() const noexcept { return status == parse_status::error; }
};

}  // namespace cs::protocol
