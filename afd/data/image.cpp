#include "afd/data/image.h"

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdlib>
#include <cstdio>  // jpeglib.h uses FILE and size_t without including their headers

#include <jpeglib.h>
#include <jerror.h>

#include "tensor/error.h"

namespace afd::data {

namespace {

// ---- libjpeg error handling ----------------------------------------------------------------------
// libjpeg reports a fatal error by calling err->error_exit, whose default prints the message and
// calls exit(). Ours formats the message and longjmps back to the setjmp in the function that
// called libjpeg, which destroys the libjpeg object and returns a status; the caller then throws.
// Between setjmp and a longjmp only libjpeg calls and trivially destructible locals live in that
// function, so the jump skips no C++ destructor (and no exception unwinds through C frames).
struct JpegErrors {
  jpeg_error_mgr mgr;  // first member: libjpeg holds a jpeg_error_mgr* to this struct
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void on_fatal(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

// Warnings (level -1) and trace messages (level >= 0) are not printed. Warnings are counted and
// otherwise ignored, as Pillow does, except "Premature end of JPEG file": libjpeg would pad the
// rest of the picture with grey and carry on, so it is treated as fatal.
void on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) on_fatal(cinfo);
  cinfo->err->num_warnings++;
}

void install_error_handlers(JpegErrors& errors) {
  jpeg_std_error(&errors.mgr);
  errors.mgr.error_exit = on_fatal;
  errors.mgr.emit_message = on_message;
  errors.message[0] = '\0';
}

constexpr int64_t kMaxPixels = int64_t(1) << 26;

enum class DecodeStatus { ok, libjpeg_error, unsupported_colour, too_large };

// The libjpeg part of decode_jpeg; the jpeg colour space is left in `colour` for messages.
DecodeStatus run_decompress(const uint8_t* data, size_t size, JpegErrors& errors, JpegImage& out, int& colour) {
  jpeg_decompress_struct cinfo{};  // zeroed: jpeg_destroy is a no-op if create never ran
  cinfo.err = &errors.mgr;
  if (setjmp(errors.jump) != 0) {
    jpeg_destroy_decompress(&cinfo);
    return DecodeStatus::libjpeg_error;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  colour = cinfo.jpeg_color_space;
  // Library defaults otherwise (JDCT_ISLOW, fancy upsampling): the settings Pillow decodes with.
  if (cinfo.jpeg_color_space == JCS_GRAYSCALE) {
    cinfo.out_color_space = JCS_GRAYSCALE;
  } else if (cinfo.jpeg_color_space == JCS_YCbCr || cinfo.jpeg_color_space == JCS_RGB) {
    cinfo.out_color_space = JCS_RGB;
  } else {
    jpeg_destroy_decompress(&cinfo);
    return DecodeStatus::unsupported_colour;
  }
  if (int64_t(cinfo.image_width) * int64_t(cinfo.image_height) > kMaxPixels) {
    out.width = cinfo.image_width;
    out.height = cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    return DecodeStatus::too_large;
  }
  jpeg_start_decompress(&cinfo);
  out.height = cinfo.output_height;
  out.width = cinfo.output_width;
  out.channels = cinfo.output_components;
  const size_t row_bytes = size_t(out.width * out.channels);
  out.pixels.resize(row_bytes * size_t(out.height));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.pixels.data() + size_t(cinfo.output_scanline) * row_bytes;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return DecodeStatus::ok;
}

const char* colour_space_name(int colour) {
  switch (colour) {
    case JCS_CMYK: return "CMYK";
    case JCS_YCCK: return "YCCK (Adobe CMYK)";
    case JCS_UNKNOWN: return "unknown";
    default: return "unsupported";
  }
}

// The libjpeg part of encode_jpeg. `buffer` is malloc'ed by libjpeg; the caller frees it.
bool run_compress(const uint8_t* pixels, int64_t height, int64_t width, int64_t channels, int quality,
                  JpegErrors& errors, unsigned char*& buffer, unsigned long& size) {
  jpeg_compress_struct cinfo{};
  cinfo.err = &errors.mgr;
  if (setjmp(errors.jump) != 0) {
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = JDIMENSION(width);
  cinfo.image_height = JDIMENSION(height);
  cinfo.input_components = int(channels);
  cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults(&cinfo);  // RGB -> YCbCr with 4:2:0 chroma, CMYK stays CMYK
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  const size_t row_bytes = size_t(width * channels);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(pixels + size_t(cinfo.next_scanline) * row_bytes);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}

}  // namespace

// ---- JPEG ---------------------------------------------------------------------------------------------

void JpegImage::to_rgb_chw(uint8_t* out) const {
  const int64_t plane = height * width;
  for (int64_t c = 0; c < 3; ++c) {
    const int64_t source_channel = channels == 1 ? 0 : c;  // greyscale: the same value in R, G and B
    uint8_t* dst = out + c * plane;
    for (int64_t i = 0; i < plane; ++i) dst[i] = pixels[size_t(i * channels + source_channel)];
  }
}

std::vector<uint8_t> JpegImage::to_rgb_chw() const {
  std::vector<uint8_t> out(size_t(3 * height * width));
  to_rgb_chw(out.data());
  return out;
}

JpegImage decode_jpeg(std::span<const uint8_t> bytes, const std::string& name) {
  JpegErrors errors;
  install_error_handlers(errors);
  JpegImage image;
  int colour = JCS_UNKNOWN;
  switch (run_decompress(bytes.data(), bytes.size(), errors, image, colour)) {
    case DecodeStatus::ok:
      return image;
    case DecodeStatus::libjpeg_error:
      AFD_FAIL("{}: unreadable JPEG: libjpeg: {} (expected a valid JPEG file, {} bytes read)", name, errors.message,
               bytes.size());
    case DecodeStatus::unsupported_colour:
      AFD_FAIL("{}: JPEG colour space {} (code {}) is not supported (expected greyscale, YCbCr or RGB)", name,
               colour_space_name(colour), colour);
    case DecodeStatus::too_large:
      AFD_FAIL("{}: JPEG of {}x{} pixels is too large (expected at most {} pixels)", name, image.width, image.height,
               kMaxPixels);
  }
  AFD_FAIL("{}: unreachable decode status", name);
}

std::vector<uint8_t> encode_jpeg(const uint8_t* pixels, int64_t height, int64_t width, int64_t channels,
                                 int quality) {
  AFD_CHECK(channels == 1 || channels == 3 || channels == 4,
            "encode_jpeg: {} channels (expected 1 greyscale, 3 RGB or 4 CMYK)", channels);
  AFD_CHECK(height > 0 && width > 0 && height <= 65500 && width <= 65500,
            "encode_jpeg: size {}x{} (expected 1 to 65500 pixels each way)", width, height);
  AFD_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality {} (expected 1 to 100)", quality);
  JpegErrors errors;
  install_error_handlers(errors);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  bool ok = run_compress(pixels, height, width, channels, quality, errors, buffer, size);
  std::vector<uint8_t> out;
  if (ok) out.assign(buffer, buffer + size);
  std::free(buffer);
  AFD_CHECK(ok, "encode_jpeg: libjpeg: {}", errors.message);
  return out;
}

// ---- Pillow's bilinear resize ----------------------------------------------------------------------------

namespace {

constexpr int kPrecisionBits = 22;  // Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2

// Output pixel o of one dimension reads source pixels first[o] .. first[o] + count[o] - 1 with
// the fixed-point weights weights[o * taps + i] (see resize_bilinear_pil in image.h).
struct ResizeTaps {
  int64_t taps = 0;  // room per output pixel: 2 ceil(support) + 1, like Pillow's ksize
  std::vector<int64_t> first, count;
  std::vector<int32_t> weights;
};

double triangle(double t) {
  t = std::fabs(t);
  return t < 1.0 ? 1.0 - t : 0.0;
}

ResizeTaps bilinear_taps(int64_t in_size, int64_t out_size) {
  const double scale = double(in_size) / double(out_size);
  const double filter_scale = std::max(scale, 1.0);  // widen the triangle when reducing (antialiasing)
  const double support = 1.0 * filter_scale;         // the triangle's support is 1
  const double inv_filter_scale = 1.0 / filter_scale;  // Pillow multiplies by this (not divides)
  ResizeTaps r;
  r.taps = int64_t(std::ceil(support)) * 2 + 1;
  r.first.resize(size_t(out_size));
  r.count.resize(size_t(out_size));
  r.weights.assign(size_t(out_size * r.taps), 0);
  std::vector<double> w(size_t(r.taps));
  for (int64_t o = 0; o < out_size; ++o) {
    const double centre = (double(o) + 0.5) * scale;
    // Truncation towards zero, as Pillow's (int) casts, then clamped to the image.
    const int64_t lo = std::max<int64_t>(int64_t(centre - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(int64_t(centre + support + 0.5), in_size);
    double sum = 0.0;
    for (int64_t i = 0; i < hi - lo; ++i) {
      w[size_t(i)] = triangle((double(i + lo) - centre + 0.5) * inv_filter_scale);
      sum += w[size_t(i)];
    }
    for (int64_t i = 0; i < hi - lo; ++i) {
      const double normalised = sum != 0.0 ? w[size_t(i)] / sum : w[size_t(i)];
      // Weights are >= 0 here, so Pillow's rounding is int(0.5 + w 2^22).
      r.weights[size_t(o * r.taps + i)] = int32_t(0.5 + normalised * double(1 << kPrecisionBits));
    }
    r.first[size_t(o)] = lo;
    r.count[size_t(o)] = hi - lo;
  }
  return r;
}

// Pillow's rounding of a pass: the sum started at 2^21 (one half), shifted down and clamped.
inline uint8_t clip8(int64_t acc) {
  return uint8_t(std::clamp<int64_t>(acc >> kPrecisionBits, 0, 255));
}

// One separable pass over `lines` lines of `in_len` values spaced `in_step` apart (1 along a row,
// the row length along a column): each output value is a weighted sum of its taps.
void resize_pass(const uint8_t* in, int64_t lines, int64_t line_stride_in, int64_t in_step, uint8_t* out,
                 int64_t line_stride_out, int64_t out_step, int64_t out_len, const ResizeTaps& t) {
  for (int64_t l = 0; l < lines; ++l) {
    const uint8_t* src = in + l * line_stride_in;
    uint8_t* dst = out + l * line_stride_out;
    for (int64_t o = 0; o < out_len; ++o) {
      const int32_t* k = &t.weights[size_t(o * t.taps)];
      const uint8_t* s = src + t.first[size_t(o)] * in_step;
      int64_t acc = int64_t(1) << (kPrecisionBits - 1);
      for (int64_t i = 0; i < t.count[size_t(o)]; ++i) acc += int64_t(s[i * in_step]) * k[i];
      dst[o * out_step] = clip8(acc);
    }
  }
}

}  // namespace

void resize_bilinear_pil(const uint8_t* in, int64_t channels, int64_t in_h, int64_t in_w, uint8_t* out,
                         int64_t out_h, int64_t out_w) {
  AFD_CHECK(channels > 0 && in_h > 0 && in_w > 0 && out_h > 0 && out_w > 0,
            "resize_bilinear_pil: {} channels, {}x{} -> {}x{} (expected positive sizes)", channels, in_w, in_h, out_w,
            out_h);
  const ResizeTaps horizontal = bilinear_taps(in_w, out_w);
  const ResizeTaps vertical = bilinear_taps(in_h, out_h);
  // Pillow skips a pass whose size does not change (its weights would be the identity anyway).
  std::vector<uint8_t> rows(size_t(in_h * out_w));  // one channel after the horizontal pass: in_h x out_w
  for (int64_t c = 0; c < channels; ++c) {
    const uint8_t* plane = in + c * in_h * in_w;
    uint8_t* dst = out + c * out_h * out_w;
    const uint8_t* mid = plane;
    if (out_w != in_w) {
      resize_pass(plane, in_h, in_w, 1, rows.data(), out_w, 1, out_w, horizontal);
      mid = rows.data();
    }
    if (out_h != in_h) {
      // Columns: out_w lines, one per column x, values spaced a row (out_w) apart.
      resize_pass(mid, out_w, 1, out_w, dst, 1, out_w, out_h, vertical);
    } else {
      std::copy(mid, mid + in_h * out_w, dst);
    }
  }
}

Tensor resize_bilinear_pil(const Tensor& images, int64_t out_h, int64_t out_w) {
  AFD_CHECK(images.defined() && images.dtype() == DType::u8 && images.device().is_cpu() &&
                (images.dim() == 4 || images.dim() == 3),
            "resize_bilinear_pil: {} (expected a u8 CPU tensor [N, C, H, W] or [C, H, W])",
            images.defined() ? images.str() : "undefined tensor");
  const bool batched = images.dim() == 4;
  const int64_t N = batched ? images.size(0) : 1, C = images.size(-3), H = images.size(-2), W = images.size(-1);
  // Checked here: an error thrown inside the parallel loop would end the program.
  AFD_CHECK(C > 0 && H > 0 && W > 0 && out_h > 0 && out_w > 0,
            "resize_bilinear_pil: {} -> {}x{} (expected positive sizes)", images.str(), out_w, out_h);
  Tensor out = batched ? Tensor::empty({N, C, out_h, out_w}, DType::u8) : Tensor::empty({C, out_h, out_w}, DType::u8);
  const uint8_t* src = images.data<uint8_t>();
  uint8_t* dst = out.data<uint8_t>();
#pragma omp parallel for if (N > 64)
  for (int64_t n = 0; n < N; ++n)
    resize_bilinear_pil(src + n * C * H * W, C, H, W, dst + n * C * out_h * out_w, out_h, out_w);
  return out;
}

}  // namespace afd::data
