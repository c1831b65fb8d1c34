// MD5 (RFC 1321), for the optional checksum verification of dataset files (not for security: the
// published dataset checksums are MD5s).
//
//   std::string hex = md5_hex(read_file(path));       // "6bbc9ace898e44ae57da46a324031adb"
//   check_md5(path, bytes, "6bbc9ace...");             // throws afd::Error naming both sums
#pragma once
#include <cstdint>
#include <span>
#include <string>

namespace afd::data {

std::string md5_hex(std::span<const uint8_t> bytes);
void check_md5(const std::string& name, std::span<const uint8_t> bytes, const std::string& expected_hex);

}  // namespace afd::data
