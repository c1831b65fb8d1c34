// afd/report/png.h and image_grid.h: PNG files through libpng (written, read back), and the picture
// of afd_run attack --save-images: the clean cell is the input upscaled by nearest neighbour, the
// perturbation cell is 0.5 + delta / (2 max|delta|), the adversarial cell is x_adv, captions are
// coloured by correctness, and the bitmap font has a distinct glyph per digit.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <string>

#include "afd/report/image_grid.h"
#include "afd/report/png.h"
#include "tensor/error.h"
#include "tests/data/temp_dir.h"

namespace afd::report {
namespace {

using afd::testing::TempDir;

TEST(Png, RoundTripGreyAndRgb) {
  TempDir dir;
  for (int64_t channels : {1, 3}) {
    Image img(7, 5, channels);
    for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t((i * 37 + 11) % 256);
    const std::string path = dir / ("img" + std::to_string(channels) + ".png");
    write_png(path, img);
    const Image back = read_png(path);
    EXPECT_EQ(back.width, 7);
    EXPECT_EQ(back.height, 5);
    EXPECT_EQ(back.channels, channels);
    EXPECT_EQ(back.pixels, img.pixels);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "img3.png.tmp"));
}

TEST(Png, BadFilesNameThePath) {
  TempDir dir;
  { std::ofstream(dir / "not.png") << "this is not a PNG"; }
  try {
    read_png(dir / "not.png");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "not.png"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_png(dir / "missing.png"), Error);
  EXPECT_THROW(write_png(dir / "no/such/folder/x.png", Image(2, 2, 3)), Error);
  EXPECT_THROW(Image(0, 2, 3), Error);
}

TEST(BitmapFont, DistinctDigitsAndWidths) {
  std::set<std::string> seen;  // each digit's pixels as bytes
  for (char c = '0'; c <= '9'; ++c) {
    Image img(5, 7, 1, 0);
    draw_text(img, 0, 0, std::string(1, c), {255, 255, 255});
    EXPECT_TRUE(seen.insert(std::string(img.pixels.begin(), img.pixels.end())).second) << c << " looks like another digit";
  }
  EXPECT_EQ(text_width("", 1), 0);
  EXPECT_EQ(text_width("Y=7", 1), 17);
  EXPECT_EQ(text_width("Y=7", 2), 34);
  // Lower case is drawn as upper case; scale 3 makes 3 x 3 squares; drawing is clipped at the border.
  Image a(20, 30, 1, 0), b(20, 30, 1, 0);
  draw_text(a, 0, 0, "p", {255, 255, 255}, 3);
  draw_text(b, 0, 0, "P", {255, 255, 255}, 3);
  EXPECT_EQ(a.pixels, b.pixels);
  EXPECT_EQ(a.at(0, 0, 0), 255);
  EXPECT_EQ(a.at(2, 2, 0), 255);
  Image small(3, 3, 3, 0);
  EXPECT_NO_THROW(draw_text(small, -4, 1, "1234567890", {255, 0, 0}, 2));
}

// Two 2 x 5 x 4 RGB examples with distinct values; the second one correct, the first one fooled.
std::vector<AdversarialExample> examples(const GridLayout& l) {
  std::vector<AdversarialExample> rows(2);
  const size_t n = size_t(l.channels * l.height * l.width);
  for (size_t r = 0; r < 2; ++r) {
    for (size_t i = 0; i < n; ++i) {
      const float clean = float((i * 7 + r * 3) % 256) / 255.0f;
      const float delta = float((int(i % 5) - 2) * (r == 0 ? 0.05 : 0.1));  // max |delta| 0.1 and 0.2
      rows[r].clean.push_back(clean);
      rows[r].adversarial.push_back(std::clamp(clean + delta, 0.0f, 1.0f));
    }
    rows[r].label = int64_t(r + 3);
    rows[r].pred_clean = int64_t(r + 3);
    rows[r].pred_adv = r == 0 ? 8 : 4;
  }
  return rows;
}

TEST(AdversarialGrid, CellsAreTheImagesUpscaledAndThePerturbationMapped) {
  TempDir dir;
  for (int64_t channels : {1, 3}) {
    const GridLayout l{channels, 5, 4, 3};
    const std::vector<AdversarialExample> rows = examples(l);
    const AdversarialGrid grid = adversarial_grid(rows, l);
    write_png(dir / "grid.png", grid.image);
    const Image img = read_png(dir / "grid.png");
    ASSERT_EQ(img.channels, 3);
    EXPECT_EQ(img.width, l.pad() + 3 * (l.column_width() + l.pad()));
    EXPECT_EQ(img.height, l.header_height() + l.pad() + 2 * l.row_height());
    EXPECT_EQ(img.pixels, grid.image.pixels);
    ASSERT_EQ(grid.max_abs_delta.size(), 2u);
    for (size_t r = 0; r < rows.size(); ++r) {
      double max_abs = 0;
      for (size_t i = 0; i < rows[r].clean.size(); ++i)
        max_abs = std::max(max_abs, std::abs(double(rows[r].adversarial[i]) - double(rows[r].clean[i])));
      EXPECT_DOUBLE_EQ(grid.max_abs_delta[r], max_abs);
      int extremes = 0;
      for (int64_t col = 0; col < 3; ++col) {
        const Point o = cell_origin(l, int64_t(r), col);
        for (int64_t j = 0; j < l.height * l.scale; ++j)
          for (int64_t i = 0; i < l.width * l.scale; ++i)
            for (int64_t c = 0; c < 3; ++c) {
              // Nearest neighbour: output pixel (i, j) shows image pixel (i / scale, j / scale).
              const size_t k = size_t((channels == 3 ? c : 0) * l.height * l.width + (j / l.scale) * l.width + i / l.scale);
              const double clean = rows[r].clean[k], adv = rows[r].adversarial[k];
              const double expected = col == 0 ? clean : col == 2 ? adv : 0.5 + (adv - clean) / (2 * max_abs);
              ASSERT_EQ(img.at(o.x + i, o.y + j, c), to_byte(expected))
                  << "channels " << channels << " row " << r << " column " << col << " at (" << i << ", " << j << ")";
              if (col == 1) extremes += img.at(o.x + i, o.y + j, c) == 0 || img.at(o.x + i, o.y + j, c) == 255;
            }
      }
      EXPECT_GT(extremes, 0) << "the largest change maps to black or white";
    }
  }
}

TEST(AdversarialGrid, CaptionsAreColouredByCorrectness) {
  const GridLayout l{1, 28, 28, 4};
  std::vector<AdversarialExample> rows = examples({1, 28, 28, 4});
  const Image img = adversarial_grid(rows, l).image;
  // The caption band below a cell: count green (right) and red (wrong) pixels.
  auto colours = [&](int64_t row, int64_t col) {
    const Point o = cell_origin(l, row, col);
    int green = 0, red = 0;
    for (int64_t y = o.y + l.height * l.scale; y < o.y + l.row_height() - l.pad() && y < img.height; ++y)
      for (int64_t x = std::max<int64_t>(0, o.x - l.pad()); x < std::min(img.width, o.x + l.column_width() + l.pad()); ++x) {
        green += img.at(x, y, 0) == 0 && img.at(x, y, 1) == 128 && img.at(x, y, 2) == 0;
        red += img.at(x, y, 0) == 200 && img.at(x, y, 1) == 0 && img.at(x, y, 2) == 0;
      }
    return std::pair{green, red};
  };
  EXPECT_GT(colours(0, 0).first, 0);   // clean prediction right
  EXPECT_EQ(colours(0, 0).second, 0);
  EXPECT_GT(colours(0, 2).second, 0);  // row 0 fooled: 8 != 3
  EXPECT_EQ(colours(0, 2).first, 0);
  EXPECT_GT(colours(1, 2).first, 0);   // row 1 still right: 4 == 4
  // No change at all: mid grey, and the amplification is undefined (max 0).
  rows[0].adversarial = rows[0].clean;
  const AdversarialGrid same = adversarial_grid(rows, l);
  EXPECT_EQ(same.max_abs_delta[0], 0);
  const Point o = cell_origin(l, 0, 1);
  EXPECT_EQ(same.image.at(o.x + 5, o.y + 7, 0), 128);
  EXPECT_EQ(perturbation_display(0.1, 0.2), 0.75);
  EXPECT_EQ(perturbation_display(-0.2, 0.2), 0.0);
  rows[1].clean.pop_back();
  EXPECT_THROW(adversarial_grid(rows, l), Error);
  EXPECT_THROW(adversarial_grid({}, l), Error);
}

}  // namespace
}  // namespace afd::report
