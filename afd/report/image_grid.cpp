#include "afd/report/image_grid.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "tensor/error.h"

namespace afd::report {

namespace {

// One glyph: 7 rows, each the 5 low bits of a byte, bit 4 the leftmost pixel.
struct Glyph {
  char c;
  uint8_t rows[7];
};

constexpr Glyph kFont[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}}, {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}}, {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}}, {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}}, {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}}, {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}}, {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}}, {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}}, {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}}, {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}}, {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {' ', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}}, {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {',', {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}}, {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}}, {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}}, {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}}, {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}}, {'|', {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}},
};

const Glyph& glyph(char c) {
  const char u = char(std::toupper(static_cast<unsigned char>(c)));
  for (const Glyph& g : kFont)
    if (g.c == u) return g;
  return kFont[std::size(kFont) - 1];  // '?'
}

constexpr Rgb kBackground = {255, 255, 255};
constexpr Rgb kInk = {0, 0, 0};
constexpr Rgb kRight = {0, 128, 0};
constexpr Rgb kWrong = {200, 0, 0};

// Draws one [C, H, W] image in [0, 1] (values already mapped for display) upscaled by nearest
// neighbour: image pixel (i, j) fills the scale x scale square at origin + (scale i, scale j).
void draw_image(Image& out, Point origin, const std::vector<double>& chw, const GridLayout& l) {
  const int64_t plane = l.height * l.width;
  for (int64_t j = 0; j < l.height; ++j)
    for (int64_t i = 0; i < l.width; ++i) {
      Rgb color;
      for (int64_t c = 0; c < 3; ++c) color[size_t(c)] = to_byte(chw[size_t((l.channels == 3 ? c : 0) * plane + j * l.width + i)]);
      out.fill_rect(origin.x + i * l.scale, origin.y + j * l.scale, l.scale, l.scale, color);
    }
}

}  // namespace

int64_t text_width(const std::string& text, int64_t scale) {
  return text.empty() ? 0 : (6 * int64_t(text.size()) - 1) * scale;
}

void draw_text(Image& image, int64_t x, int64_t y, const std::string& text, Rgb color, int64_t scale) {
  for (size_t k = 0; k < text.size(); ++k) {
    const Glyph& g = glyph(text[k]);
    const int64_t gx = x + int64_t(k) * 6 * scale;
    for (int64_t r = 0; r < kGlyphHeight; ++r)
      for (int64_t b = 0; b < 5; ++b)
        if (g.rows[r] & (0x10 >> b)) image.fill_rect(gx + b * scale, y + r * scale, scale, scale, color);
  }
}

int64_t GridLayout::column_width() const { return std::max(width * scale, text_width("ADVERSARIAL", text_scale())); }

Point cell_origin(const GridLayout& l, int64_t row, int64_t column) {
  const int64_t col_x = l.pad() + column * (l.column_width() + l.pad());
  return {col_x + (l.column_width() - l.width * l.scale) / 2, l.header_height() + l.pad() + row * l.row_height()};
}

double perturbation_display(double delta, double max_abs) { return max_abs > 0 ? 0.5 + delta / (2 * max_abs) : 0.5; }

AdversarialGrid adversarial_grid(const std::vector<AdversarialExample>& rows, const GridLayout& l) {
  AFD_CHECK(!rows.empty(), "adversarial_grid: no rows");
  AFD_CHECK((l.channels == 1 || l.channels == 3) && l.height > 0 && l.width > 0 && l.scale >= 1,
            "adversarial_grid: image [{}, {}, {}] at scale {} (channels 1 or 3, scale >= 1)", l.channels, l.height,
            l.width, l.scale);
  const size_t numel = size_t(l.channels * l.height * l.width);
  const int64_t ts = l.text_scale();
  const int64_t width = l.pad() + 3 * (l.column_width() + l.pad());
  const int64_t height = l.header_height() + l.pad() + int64_t(rows.size()) * l.row_height();
  AdversarialGrid grid{Image(width, height, 3, 255), {}};
  Image& img = grid.image;
  img.fill_rect(0, 0, width, height, kBackground);

  const char* titles[3] = {"CLEAN", "DELTA", "ADVERSARIAL"};
  for (int64_t c = 0; c < 3; ++c) {
    const int64_t col_x = l.pad() + c * (l.column_width() + l.pad());
    const std::string t = titles[c];
    draw_text(img, col_x + (l.column_width() - text_width(t, ts)) / 2, l.pad(), t, kInk, ts);
  }
  auto caption = [&](int64_t row, int64_t column, const std::string& text, Rgb color) {
    const int64_t col_x = l.pad() + column * (l.column_width() + l.pad());
    const int64_t y = cell_origin(l, row, column).y + l.height * l.scale + l.pad();
    draw_text(img, col_x + (l.column_width() - text_width(text, ts)) / 2, y, text, color, ts);
  };

  for (size_t r = 0; r < rows.size(); ++r) {
    const AdversarialExample& ex = rows[r];
    AFD_CHECK(ex.clean.size() == numel && ex.adversarial.size() == numel,
              "adversarial_grid: row {} has {} clean and {} adversarial values, expected {} ([{}, {}, {}])", r,
              ex.clean.size(), ex.adversarial.size(), numel, l.channels, l.height, l.width);
    std::vector<double> clean(numel), adv(numel), delta(numel);
    double max_abs = 0;
    for (size_t i = 0; i < numel; ++i) {
      clean[i] = ex.clean[i];
      adv[i] = ex.adversarial[i];
      delta[i] = adv[i] - clean[i];
      max_abs = std::max(max_abs, std::abs(delta[i]));
    }
    for (double& d : delta) d = perturbation_display(d, max_abs);
    grid.max_abs_delta.push_back(max_abs);
    const int64_t row = int64_t(r);
    draw_image(img, cell_origin(l, row, 0), clean, l);
    draw_image(img, cell_origin(l, row, 1), delta, l);
    draw_image(img, cell_origin(l, row, 2), adv, l);
    caption(row, 0, fmt::format("Y={} P={}", ex.label, ex.pred_clean), ex.pred_clean == ex.label ? kRight : kWrong);
    caption(row, 1, fmt::format("MAX={:.3g}", max_abs), kInk);
    caption(row, 2, fmt::format("P={}", ex.pred_adv), ex.pred_adv == ex.label ? kRight : kWrong);
  }
  return grid;
}

}  // namespace afd::report
