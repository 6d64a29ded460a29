#pragma once
// Big-endian helpers over byte spans. The only place that does byte
// arithmetic outside the parsers.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace cs::core {

using byte_view = std::span<const std::uint8_t>;
using byte_span = std::span<std::uint8_t>;

/// Precondition: in.size() >= 2.
constexpr std::uint16_t load_be16(byte_view in) noexcept {
  return static_cast<std::uint16_t>((in[0] << 8) | in[1]);
}

/// Precondition: out.size() >= 2.
constexpr void store_be16(byte_span out, std::uint16_t v) noexcept {
  out[0] = static_cast<std::uint8_t>(v >> 8);
  out[1] = static_cast<std::uint8_t>(v & 0xFF);
}

/// A bounded append-only writer over a caller-owned buffer. Writes past the
/// end set `overflow` and are dropped, so encoders check once at the end.
class byte_writer {
 public:
  explicit byte_writer(byte_span out) noexcept : out_(out) {}

  void put(std::uint8_t b) noexcept {
    if (pos_ < out_.size()) {
      out_[pos_++] = b;
    } else {
      overflow_ = true;
    }
  }
  void put_be16(std::uint16_t v) noexcept {
    put(static_cast<std::uint8_t>(v >> 8));
    put(static_cast<std::uint8_t>(v & 0xFF));
  }
  void put(byte_view bytes) noexcept {
    for (auto b : bytes) {
      put(b);
    }
  }
  template <std::size_t N>
  void put(const std::array<unsigned char, N>& bytes) noexcept {
    put(byte_view(bytes.data(), bytes.size()));
  }

  /// Bytes written, or 0 when the buffer was too small.
  std::size_t result() const noexcept { return overflow_ ? 0 : pos_; }

 private:
  byte_span out_;
  std::size_t pos_ = 0;
  bool overflow_ = false;
};

}  // namespace cs::core
