// Pictures of what an attack does: a grid with one row per test point and three columns, the clean
// image, the perturbation (amplified to the full range) and the adversarial image, each captioned
// with labels drawn in a tiny built-in 5x7 bitmap font. afd_run attack --save-images N writes it.
//
//   std::vector<report::AdversarialExample> rows = ...;   // clean, x_adv as [C, H, W] in [0, 1]
//   report::AdversarialGrid g = report::adversarial_grid(rows, {/*channels=*/1, 28, 28, /*scale=*/4});
//   report::write_png("out/adversarial.png", g.image);
//
// The perturbation delta = x_adv - x is shown per image as 0.5 + delta / (2 max|delta|) (grey 0.5 is
// no change; the largest change of the image, over all its pixels and channels, is black or white);
// max|delta| of each row is returned, so the amplification 1 / (2 max|delta|) can be reported.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "afd/report/png.h"

namespace afd::report {

// ---- the bitmap font -----------------------------------------------------------------------------
// Glyphs 5 wide and 7 high for digits, A-Z (lower case is drawn as upper case), space and . , - + =
// : / ( ) % | ? (anything else is drawn as ?). Each glyph advances 6 pixels times `scale`.
int64_t text_width(const std::string& text, int64_t scale);
constexpr int64_t kGlyphHeight = 7;
// Draws `text` with its top-left corner at (x, y), every font pixel a scale x scale square; pixels
// outside the image are clipped.
void draw_text(Image& image, int64_t x, int64_t y, const std::string& text, Rgb color, int64_t scale = 1);

// ---- the grid ------------------------------------------------------------------------------------
struct AdversarialExample {
  std::vector<float> clean, adversarial;  // [C, H, W], values in [0, 1]
  int64_t label = 0, pred_clean = 0, pred_adv = 0;
};

struct GridLayout {
  int64_t channels = 1, height = 28, width = 28;  // of one image (1 = grey, 3 = RGB)
  int64_t scale = 4;                               // each image pixel becomes scale x scale pixels

  int64_t text_scale() const { return scale >= 4 ? 2 : 1; }
  int64_t pad() const { return 4 * text_scale(); }
  int64_t line_height() const { return (kGlyphHeight + 3) * text_scale(); }
  // A column is as wide as the upscaled image or a 9-character caption, whichever is wider.
  int64_t column_width() const;
  int64_t row_height() const { return height * scale + pad() + line_height() + pad(); }
  int64_t header_height() const { return pad() + line_height(); }
};

// Top-left pixel of the upscaled image in cell (row, column); column 0 clean, 1 perturbation, 2
// adversarial.
struct Point {
  int64_t x = 0, y = 0;
};
Point cell_origin(const GridLayout& layout, int64_t row, int64_t column);

// The perturbation's display value in [0, 1]: 0.5 + delta / (2 max_abs) (0.5 when max_abs is 0).
double perturbation_display(double delta, double max_abs);

struct AdversarialGrid {
  Image image;                        // RGB
  std::vector<double> max_abs_delta;  // per row: max over pixels and channels of |x_adv - x|
};

// Captions: the clean cell "Y=label P=prediction", the perturbation cell "MAX=max|delta|" and the
// adversarial cell "P=prediction"; a prediction is green when it equals the label, red when not.
// The header names the columns: CLEAN, DELTA, ADVERSARIAL.
AdversarialGrid adversarial_grid(const std::vector<AdversarialExample>& rows, const GridLayout& layout);

}  // namespace afd::report
