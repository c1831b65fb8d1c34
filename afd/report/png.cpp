#include "afd/report/png.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "tensor/error.h"

namespace afd::report {

Image::Image(int64_t w, int64_t h, int64_t c, uint8_t fill) : width(w), height(h), channels(c) {
  AFD_CHECK(w > 0 && h > 0 && (c == 1 || c == 3), "Image: {}x{} with {} channels (need positive sizes, 1 or 3 channels)",
            w, h, c);
  pixels.assign(size_t(w * h * c), fill);
}

void Image::set(int64_t x, int64_t y, Rgb color) {
  if (x < 0 || y < 0 || x >= width || y >= height) return;
  if (channels == 1) {
    at(x, y, 0) = uint8_t((int(color[0]) + color[1] + color[2] + 1) / 3);
  } else {
    for (int64_t c = 0; c < 3; ++c) at(x, y, c) = color[size_t(c)];
  }
}

void Image::fill_rect(int64_t x, int64_t y, int64_t w, int64_t h, Rgb color) {
  for (int64_t j = y; j < y + h; ++j)
    for (int64_t i = x; i < x + w; ++i) set(i, j, color);
}

uint8_t to_byte(double v) { return uint8_t(std::lround(std::clamp(v, 0.0, 1.0) * 255.0)); }

void write_png(const std::string& path, const Image& img) {
  AFD_CHECK(img.channels == 1 || img.channels == 3, "write_png {}: {} channels (1 or 3)", path, img.channels);
  AFD_CHECK(img.pixels.size() == size_t(img.width * img.height * img.channels),
            "write_png {}: {} bytes of pixels for {}x{}x{}", path, img.pixels.size(), img.width, img.height,
            img.channels);
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = png_uint_32(img.width);
  png.height = png_uint_32(img.height);
  png.format = img.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  // Written next to the target, then renamed: a reader never sees half a file.
  const std::string tmp = path + ".tmp";
  if (!png_image_write_to_file(&png, tmp.c_str(), 0, img.pixels.data(), png_int_32(img.width * img.channels), nullptr)) {
    std::remove(tmp.c_str());
    AFD_FAIL("write_png {}: {}", path, png.message);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  AFD_CHECK(!ec, "write_png {}: cannot rename {} to it: {}", path, tmp, ec.message());
}

Image read_png(const std::string& path) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&png, path.c_str())) AFD_FAIL("read_png {}: {}", path, png.message);
  const bool grey = (png.format & PNG_FORMAT_FLAG_COLOR) == 0;
  png.format = grey ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  Image img(int64_t(png.width), int64_t(png.height), grey ? 1 : 3);
  if (!png_image_finish_read(&png, nullptr, img.pixels.data(), png_int_32(img.width * img.channels), nullptr)) {
    const std::string message = png.message;
    png_image_free(&png);
    AFD_FAIL("read_png {}: {}", path, message);
  }
  return img;
}

}  // namespace afd::report
