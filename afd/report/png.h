// 8-bit images in memory and as PNG files (libpng's simplified API).
//
//   report::Image img(/*width=*/28, /*height=*/28, /*channels=*/3);   // black, RGB
//   img.set(3, 5, {255, 0, 0});                                         // pixel (x 3, y 5) red
//   report::write_png("out/picture.png", img);                          // temp file + rename
//   report::Image back = report::read_png("out/picture.png");           // back.at(3, 5, 0) == 255
//
// Errors throw afd::Error naming the file and libpng's message.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace afd::report {

using Rgb = std::array<uint8_t, 3>;

// Pixels row-major, channels interleaved: [height, width, channels]; channels 1 (grey) or 3 (RGB).
struct Image {
  int64_t width = 0, height = 0, channels = 3;
  std::vector<uint8_t> pixels;

  Image() = default;
  Image(int64_t width, int64_t height, int64_t channels = 3, uint8_t fill = 0);
  uint8_t& at(int64_t x, int64_t y, int64_t c) { return pixels[size_t((y * width + x) * channels + c)]; }
  uint8_t at(int64_t x, int64_t y, int64_t c) const { return pixels[size_t((y * width + x) * channels + c)]; }
  // Sets every channel of an RGB pixel (a grey image takes the mean); pixels outside are ignored.
  void set(int64_t x, int64_t y, Rgb color);
  void fill_rect(int64_t x, int64_t y, int64_t w, int64_t h, Rgb color);
};

// A value in [0, 1] as a byte: round(255 v), clamped.
uint8_t to_byte(double v);

void write_png(const std::string& path, const Image& image);
// Reads a PNG as 8-bit grey (1 channel) when the file is grey, else as RGB (alpha dropped).
Image read_png(const std::string& path);

}  // namespace afd::report
