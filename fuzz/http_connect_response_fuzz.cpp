// HTTP CONNECT response head (client side): http_connect::parse_response,
// checked against an oracle written from its contract (RFC 9112 status
// line, head bounded by max_response_head, header lines without NUL or
// bare CR/LF):
//  - the whole input gives exactly the oracle's status, length and error;
//  - statelessness: prefixes give need_more..., then the same outcome for
//    every longer prefix. Checking every prefix of a head up to 8 KiB is
//    quadratic, so prefixes are taken where the outcome can change: the
//    first bytes, around CR/LF, around the size cap, plus a few chosen
//    from the input's hash;
//  - done: the head alone parses to the same status, and tunnel bytes after
//    it are never part of it.
#include "fuzz_common.hpp"
#include "protocol/http_connect.hpp"

#include <algorithm>
#include <string_view>
#include <vector>

namespace hc = cs::protocol::http_connect;
namespace core = cs::core;
using namespace cs::fuzz;
using cs::core::socks_errc;

namespace {

parse_result parse(const std::uint8_t* data, std::size_t k, hc::response& out) {
  return hc::parse_response(view(data, k), out);
}

bool valid_status_line(std::string_view sl, unsigned& status) {
  if (sl.size() < 12 || !sl.starts_with("HTTP/1.") || (sl[7] != '0' && sl[7] != '1') || sl[8] != ' ') {
    return false;
  }
  status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (sl[i] < '0' || sl[i] > '9') {
      return false;
    }
    status = status * 10 + static_cast<unsigned>(sl[i] - '0');
  }
  if (status < 100 || status > 599 || (sl.size() > 12 && sl[12] != ' ')) {
    return false;
  }
  for (std::size_t i = 12; i < sl.size(); ++i) {
    const auto u = static_cast<unsigned char>(sl[i]);
    if ((u < 0x20 && u != '\t') || u == 0x7F) {
      return false;
    }
  }
  return true;
}

bool clean_headers(std::string_view h) {
  for (std::size_t i = 0; i < h.size(); ++i) {
    if (h[i] == '\0') {
      return false;
    }
    if (h[i] == '\r' && (i + 1 == h.size() || h[i + 1] != '\n')) {
      return false;
    }
    if (h[i] == '\n' && (i == 0 || h[i - 1] != '\r')) {
      return false;
    }
  }
  return true;
}

/// What parse_response must return for `size` bytes at `data`.
parse_result oracle(const std::uint8_t* data, std::size_t size, unsigned& status) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const std::string_view t = all.substr(0, std::min(size, hc::max_response_head));
  const auto eol = t.find("\r\n");
  if (eol == std::string_view::npos) {
    const std::string_view prefix = "HTTP/1.";
    const bool can_grow = std::string_view(prefix).starts_with(t.substr(0, std::min(t.size(), prefix.size())));
    if (!can_grow) {
      return parse_result::fail(socks_errc::general_failure);
    }
    return size >= hc::max_response_head ? parse_result::fail(socks_errc::field_too_long)
                                          : parse_result::need_more();
  }
  if (!valid_status_line(t.substr(0, eol), status)) {
    return parse_result::fail(socks_errc::general_failure);
  }
  const auto end = t.find("\r\n\r\n", eol);
  if (end == std::string_view::npos) {
    return size >= hc::max_response_head ? parse_result::fail(socks_errc::field_too_long)
                                         : parse_result::need_more();
  }
  if (end > eol && !clean_headers(t.substr(eol + 2, end - eol - 2))) {
    return parse_result::fail(socks_errc::general_failure);
  }
  return parse_result::done(end + 4);
}

bool same(const parse_result& a, const parse_result& b) {
  return a.status == b.status && a.consumed == b.consumed && a.ec == b.ec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  hc::response resp;
  const auto r = parse(data, size, resp);
  check_result(r, size);
  unsigned want_status = 0;
  const auto want = oracle(data, size, want_status);
  FUZZ_CHECK(same(r, want));
  if (r.is_done()) {
    FUZZ_CHECK(resp.status == want_status && resp.status >= 100 && resp.status <= 599);
    FUZZ_CHECK(r.consumed <= hc::max_response_head);
  }
  if (r.is_error() && r.ec == socks_errc::field_too_long) {
    FUZZ_CHECK(size >= hc::max_response_head);
  }

  // Prefix points.
  std::vector<std::size_t> points;
  for (std::size_t k = 0; k <= std::min<std::size_t>(size, 24); ++k) {
    points.push_back(k);
  }
  std::vector<std::size_t> crlf;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == '\r' || data[i] == '\n') {
      crlf.push_back(i);
    }
  }
  for (std::size_t j = 0; j < crlf.size(); ++j) {
    if (j < 12 || j + 4 >= crlf.size()) {
      for (std::size_t d = 0; d < 3; ++d) {
        points.push_back(crlf[j] + d);
      }
    }
  }
  for (const std::size_t c : {hc::max_response_head - 1, hc::max_response_head, hc::max_response_head + 1}) {
    points.push_back(c);
  }
  if (r.is_done()) {
    points.push_back(r.consumed - 1);
    points.push_back(r.consumed);
  }
  std::uint32_t hash = 2166136261u;
  for (std::size_t i = 0; i < size; ++i) {
    hash = (hash ^ data[i]) * 16777619u;
  }
  for (int i = 0; i < 4 && size > 0; ++i) {
    hash = hash * 1103515245u + 12345u;
    points.push_back(hash % (size + 1));
  }
  if (size > 0) {
    points.push_back(size - 1);
  }
  std::erase_if(points, [&](std::size_t k) { return k > size; });
  std::sort(points.begin(), points.end());
  points.erase(std::unique(points.begin(), points.end()), points.end());

  bool settled = false;
  parse_result first{};
  unsigned first_status = 0;
  for (const std::size_t k : points) {
    hc::response v;
    const auto rk = parse(data, k, v);
    check_result(rk, k);
    if (!settled) {
      if (rk.status != parse_status::need_more) {
        settled = true;
        first = rk;
        first_status = v.status;
      }
      continue;
    }
    FUZZ_CHECK(same(rk, first));
    if (rk.is_done()) {
      FUZZ_CHECK(v.status == first_status);
    }
  }
  if (settled) {
    FUZZ_CHECK(same(r, first));
    if (r.is_done()) {
      FUZZ_CHECK(resp.status == first_status);
    }
  } else {
    FUZZ_CHECK(size < hc::max_response_head && r.status == parse_status::need_more);
  }

  if (r.is_done()) {
    // The head alone, and a reused output object, give the same answer.
    hc::response alone;
    FUZZ_CHECK(same(parse(data, r.consumed, alone), r) && alone.status == resp.status);
    hc::response dirty = resp;
    FUZZ_CHECK(same(parse(data, r.consumed, dirty), r) && dirty.status == resp.status);
  }
  return 0;
}
