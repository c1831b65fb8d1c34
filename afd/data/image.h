// Image files and resizing for the datasets stored as pictures (Tiny-ImageNet-200).
//
//   JpegImage img = decode_jpeg(read_file(path), path);            // u8 H x W x C, C = 1 or 3
//   std::vector<uint8_t> chw = img.to_rgb_chw();                   // 3 x H x W, greyscale replicated
//   resize_bilinear_pil(chw.data(), 3, 64, 64, out, 32, 32);       // = PIL Image.resize(BILINEAR)
//
// JPEG goes through libjpeg (Debian's libjpeg62-turbo) with the library's decoding defaults, which
// Pillow keeps too: the accurate integer DCT (JDCT_ISLOW) and fancy (triangle) chroma upsampling.
// Pillow on Debian links the same library, so a decode here equals Pillow's byte for byte
// (tests/data/test_tinyimagenet.cpp checks it on committed files).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace afd::data {

struct JpegImage {
  int64_t height = 0, width = 0;
  int64_t channels = 0;         // 1 (greyscale) or 3 (RGB)
  std::vector<uint8_t> pixels;  // H x W x C, rows top to bottom (the order libjpeg writes them)

  // 3 x H x W planes (R, G, B); a greyscale image gives three equal planes.
  std::vector<uint8_t> to_rgb_chw() const;
  void to_rgb_chw(uint8_t* out) const;  // the same into out[3 * H * W]
};

// Decodes a baseline or progressive JPEG. Greyscale files stay 1 channel, YCbCr and RGB files
// become RGB. Throws afd::Error naming `name` for anything libjpeg rejects (not a JPEG, corrupt
// data, a file that ends early), for CMYK / YCCK files (not supported: no dataset here uses them)
// and for images over 2^26 pixels. libjpeg's fatal errors never reach exit(): its error_exit
// handler longjmps back into the decoder, which cleans up and throws. libjpeg's warnings (for
// instance extraneous bytes before a marker) are ignored, as Pillow ignores them, except
// "Premature end of JPEG file", which is an error.
JpegImage decode_jpeg(std::span<const uint8_t> bytes, const std::string& name);

// Encodes u8 H x W x C pixels (C = 1 greyscale, 3 RGB stored as YCbCr with 4:2:0 chroma, or
// 4 CMYK), quality 1..100. For tests and synthetic datasets.
std::vector<uint8_t> encode_jpeg(const uint8_t* pixels, int64_t height, int64_t width, int64_t channels,
                                 int quality = 90);

// ---- resizing ----------------------------------------------------------------------------------------
// Pillow's Image.resize((out_w, out_h), Image.BILINEAR) on u8 planes: in [C, in_h, in_w] ->
// out [C, out_h, out_w], each channel on its own (Pillow treats RGB channels alike).
//
// Pillow's definition (libImaging/Resample.c): separable, horizontal pass first. For an output
// pixel x in a dimension reduced by scale = in / out (>= 1), the centre in source coordinates is
// c = (x + 0.5) scale; the filter is the triangle 1 - |t| widened by the scale, so its support is
// 1 * scale source pixels on each side; source pixel i (taps from int(c - scale + 0.5), clamped to
// the image) gets weight tri((i + 0.5 - c) / scale), and the weights are divided by their sum.
// They become 22-bit fixed point (int(0.5 + w 2^22)), a pass adds 2^21 to the weighted sum and
// keeps sum >> 22 clamped to 0..255, so the horizontal result is rounded to u8 before the
// vertical pass.
//
// For the exact 2x reduction 64 -> 32: c = 2x + 1, support 2, taps 2x - 1 .. 2x + 2 with weights
// 1/8, 3/8, 3/8, 1/8 (tri at distances 1.5, 0.5, 0.5, 1.5 over 2); at the borders one tap falls
// outside and the other three renormalise to 3/7, 3/7, 1/7. Checked byte for byte against
// python3-pil 9.4 (tests/fixtures/data/make_tinyimagenet_fixture.py recomputes these weights too).
// Enlarging (scale < 1) uses the plain triangle (support 1), as Pillow does.
void resize_bilinear_pil(const uint8_t* in, int64_t channels, int64_t in_h, int64_t in_w, uint8_t* out,
                         int64_t out_h, int64_t out_w);
// The same on a u8 tensor [N, C, H, W] (or [C, H, W]) -> [N, C, out_h, out_w].
Tensor resize_bilinear_pil(const Tensor& images, int64_t out_h, int64_t out_w);

}  // namespace afd::data
