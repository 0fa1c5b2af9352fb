// hostile_files_test.cpp - dataset files that are half-copied or crafted to
// hurt (issue 11): each must end in a data error naming the file and the
// reason, never a signal, an out-of-bounds read, a hang or gigabytes of
// memory. The bombs run in a forked child whose address space is capped and
// which is killed after a few seconds, so a regression fails the test instead
// of the machine.
// SPDX-License-Identifier: Apache-2.0
#include "plugin_harness.hpp"
#include "qdata/file_io.hpp"
#include "qdata/image_decode.hpp"
#include "sample_files.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
namespace qt = qplug_transforms;
using qdata_test::make_dataset;
using qtool_samples::TempDir;
using qtool_samples::write_bytes;

namespace {

// What a child run of a reader ended with.
struct Outcome {
  int exit_code = -1;  // qsdk::Error: its category's exit code (data = 4); 0 = no error
  int signal = 0;      // killed by this signal (SIGALRM = ran too long)
  std::string text;    // "<place> | <message> | <hint>", or what else was thrown
};

uint64_t address_space_now() {
  std::ifstream f("/proc/self/statm");
  uint64_t pages = 0;
  f >> pages;
  return pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// Runs `f` in a forked child that may map `headroom` bytes beyond what this
// process maps now and lives at most `seconds`. A qsdk::Error exits with the
// exit code qhost documents for its category (README: data 4).
template <class F>
Outcome run_bounded(F&& f, uint64_t headroom = uint64_t(1) << 30, unsigned seconds = 10) {
  std::fflush(nullptr);
  int fds[2];
  if (pipe(fds) != 0) return {-1, 0, "pipe failed"};
  const uint64_t limit = address_space_now() + headroom;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    rlimit rl{limit, limit};
    setrlimit(RLIMIT_AS, &rl);
    alarm(seconds);
    int code = 0;
    std::string text;
    try {
      f();
    } catch (const qsdk::Error& e) {
      code = static_cast<int>(e.category());
      text = e.place() + " | " + e.message() + " | " + e.hint();
    } catch (const std::bad_alloc&) {
      code = 100;
      text = "std::bad_alloc";
    } catch (const std::exception& e) {
      code = 101;
      text = std::string("std::exception: ") + e.what();
    }
    if (write(fds[1], text.data(), text.size()) < 0) code = 102;
    _exit(code);
  }
  close(fds[1]);
  Outcome out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.text.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) out.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) out.signal = WTERMSIG(status);
  return out;
}

// A data error (exit code 4) whose text names `file` and contains `reason`.
void expect_data_error(const Outcome& o, const std::string& file, const std::string& reason) {
  EXPECT_EQ(o.signal, 0) << "killed by signal " << o.signal << " (14 = SIGALRM: ran too long)";
  EXPECT_EQ(o.exit_code, 4) << o.text;
  EXPECT_NE(o.text.find(file), std::string::npos) << o.text;
  EXPECT_NE(o.text.find(reason), std::string::npos) << o.text;
}

std::vector<uint8_t> cat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void put_le32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 0; s < 32; s += 8) v.push_back(static_cast<uint8_t>(x >> s));
}

// A valid gzip file of `prefix` followed by `zero_mib` MiB of zeros, built
// from one deflated MiB repeated (each piece ends in a full flush, so it
// refers to nothing before it): a 512 MiB bomb in ~0.5 MB, made in
// milliseconds.
std::vector<uint8_t> gzip_bomb(const std::vector<uint8_t>& prefix, uint32_t zero_mib) {
  auto raw_deflate = [](const std::vector<uint8_t>& in) {
    z_stream zs;
    std::memset(&zs, 0, sizeof(zs));
    deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY);
    std::vector<uint8_t> out(deflateBound(&zs, in.size()) + 64);
    zs.next_in = const_cast<Bytef*>(in.data());
    zs.avail_in = static_cast<uInt>(in.size());
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    deflate(&zs, Z_FULL_FLUSH);
    out.resize(out.size() - zs.avail_out);
    deflateEnd(&zs);
    return out;
  };
  const std::vector<uint8_t> mib(1 << 20, 0);
  const auto block = raw_deflate(mib);
  std::vector<uint8_t> out{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  out = cat(out, raw_deflate(prefix));
  uLong crc = crc32(0, prefix.data(), static_cast<uInt>(prefix.size()));
  const uLong crc_mib = crc32(0, mib.data(), static_cast<uInt>(mib.size()));
  for (uint32_t i = 0; i < zero_mib; ++i) {
    out = cat(out, block);
    crc = crc32_combine(crc, crc_mib, 1 << 20);
  }
  out.push_back(0x03);  // empty final block (fixed Huffman, end-of-block code)
  out.push_back(0x00);
  put_le32(out, static_cast<uint32_t>(crc));
  put_le32(out, static_cast<uint32_t>(prefix.size() + (uint64_t(zero_mib) << 20)));
  return out;
}

// Offset of the SOFn segment's height field (width follows) in a JPEG.
size_t sof_dims_offset(const std::vector<uint8_t>& jpeg) {
  size_t pos = 2;
  while (pos + 4 < jpeg.size() && jpeg[pos] == 0xFF) {
    const uint8_t m = jpeg[pos + 1];
    const size_t len = (size_t(jpeg[pos + 2]) << 8) | jpeg[pos + 3];
    if (m == 0xC0 || m == 0xC1 || m == 0xC2) return pos + 5;
    pos += 2 + len;
  }
  ADD_FAILURE() << "no SOF marker";
  return 0;
}

// A JPEG whose header claims `w` x `h` (its data is for the real, tiny size).
std::vector<uint8_t> jpeg_claiming(int w, int h) {
  auto jpeg = qtool_samples::encode_jpeg(qtool_samples::smooth_rgb(16, 16, 1), 16, 16, 50);
  const size_t at = sof_dims_offset(jpeg);
  jpeg[at] = static_cast<uint8_t>(h >> 8);
  jpeg[at + 1] = static_cast<uint8_t>(h);
  jpeg[at + 2] = static_cast<uint8_t>(w >> 8);
  jpeg[at + 3] = static_cast<uint8_t>(w);
  return jpeg;
}

void put_chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& data) {
  for (int s = 24; s >= 0; s -= 8) png.push_back(static_cast<uint8_t>(data.size() >> s));
  const size_t start = png.size();
  png.insert(png.end(), type, type + 4);
  png.insert(png.end(), data.begin(), data.end());
  const uLong crc = crc32(0, png.data() + start, static_cast<uInt>(png.size() - start));
  for (int s = 24; s >= 0; s -= 8) png.push_back(static_cast<uint8_t>(crc >> s));
}

// A small, well-formed-looking PNG (valid CRCs) claiming `w` x `h` RGB pixels:
// one IDAT holding the first row only.
std::vector<uint8_t> png_claiming(uint32_t w, uint32_t h) {
  std::vector<uint8_t> png{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  std::vector<uint8_t> ihdr;
  for (uint32_t v : {w, h})
    for (int s = 24; s >= 0; s -= 8) ihdr.push_back(static_cast<uint8_t>(v >> s));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit RGB, deflate, no filter, not interlaced
  put_chunk(png, "IHDR", ihdr);
  std::vector<uint8_t> row(1 + 3 * static_cast<size_t>(w), 0);
  uLongf size = compressBound(static_cast<uLong>(row.size()));
  std::vector<uint8_t> idat(size);
  compress2(idat.data(), &size, row.data(), static_cast<uLong>(row.size()), 9);
  idat.resize(size);
  put_chunk(png, "IDAT", idat);
  put_chunk(png, "IEND", {});
  return png;
}

// root/{train,val}/cat/ok.jpg (+ extra files in val/cat).
void image_folder(const TempDir& dir, const std::vector<std::pair<std::string, std::vector<uint8_t>>>& val_files) {
  const auto ok = qtool_samples::encode_jpeg(qtool_samples::smooth_rgb(40, 30, 2), 40, 30);
  write_bytes(dir / "train/cat/ok.jpg", ok);
  write_bytes(dir / "val/cat/a_ok.jpg", ok);
  for (const auto& [name, bytes] : val_files) write_bytes(dir / ("val/cat/" + name), bytes);
}

qsdk::Example get(const std::shared_ptr<qsdk::Dataset>& ds, int64_t i) {
  std::mt19937_64 rng(0);
  return ds->get(i, rng);
}

class Hostile : public ::testing::Test {
 protected:
  // Load the plugins in the parent: the children only run the readers.
  static void SetUpTestSuite() {
    for (const char* p : {"idx", "cifar", "imagefolder"}) qdata_test::dataset_spec(p, p);
  }
};

}  // namespace

// Issue 11.1: 65536^4 = 2^64 wraps to 0 in 64 bits, which "matched" an empty
// payload and let get() read 2^48 bytes past the end.
TEST_F(Hostile, IdxDimensionProductOverflowIsRefused) {
  TempDir dir("idxovf");
  write_bytes(dir / "train-images-idx3-ubyte", qtool_samples::idx_bytes({65536, 65536, 65536, 65536}, {}));
  write_bytes(dir / "train-labels-idx1-ubyte", qtool_samples::idx_bytes({65536}, std::vector<uint8_t>(65536, 0)));
  for (const int64_t max_bytes : {int64_t(1) << 30, INT64_MAX}) {  // the cap, then the overflow check itself
    const auto o = run_bounded([&] {
      make_dataset("idx", "idx", {{"root", dir.path()}, {"max_bytes", max_bytes}}, true);
    });
    expect_data_error(o, "train-images-idx3-ubyte", "65536 x 65536 x 65536 x 65536 elements, more than max_bytes");
  }
}

TEST_F(Hostile, IdxZeroAndNegativeDimensionsAreRefused) {
  TempDir dir("idxdim");
  write_bytes(dir / "train-labels-idx1-ubyte", qtool_samples::idx_bytes({0}, {}));
  write_bytes(dir / "train-images-idx3-ubyte", qtool_samples::idx_bytes({0, 28, 28}, {}));
  auto o = run_bounded([&] { make_dataset("idx", "idx", {{"root", dir.path()}}, true); });
  expect_data_error(o, "train-images-idx3-ubyte", "dimension 0 of the header is 0, outside [1, 2147483647]");
  // 0x80000000 is negative as the signed 32-bit dim IDX specifies.
  write_bytes(dir / "train-images-idx3-ubyte", qtool_samples::idx_bytes({1, int64_t(1) << 31, 1}, {}));
  o = run_bounded([&] { make_dataset("idx", "idx", {{"root", dir.path()}}, true); });
  expect_data_error(o, "train-images-idx3-ubyte", "dimension 1 of the header is 2147483648");
}

// Issue 11.2: the gzip trailer's ISIZE decided the preallocation (4 GiB).
TEST_F(Hostile, GzipTrailerSizeIsNotTrusted) {
  TempDir dir("gzisize");
  // The smallest gzip file: empty content, but ISIZE = 4 GiB - 1.
  std::vector<uint8_t> tiny{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x03, 0x00, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  write_bytes(dir / "tiny.gz", tiny);
  auto o = run_bounded([&] { qt::read_maybe_gzip(dir / "tiny.gz"); }, uint64_t(512) << 20);
  expect_data_error(o, "tiny.gz", "corrupt gzip data: incorrect length check");
  // The same through the IDX reader, on a real IDX file with a forged ISIZE.
  auto gz = qtool_samples::gzip(qtool_samples::idx_bytes({3, 2, 2}, std::vector<uint8_t>(12, 7)));
  std::fill(gz.end() - 4, gz.end(), 0xff);
  write_bytes(dir / "train-images-idx3-ubyte.gz", gz);
  write_bytes(dir / "train-labels-idx1-ubyte", qtool_samples::idx_bytes({3}, {1, 2, 3}));
  o = run_bounded([&] { make_dataset("idx", "idx", {{"root", dir.path()}}, true); }, uint64_t(512) << 20);
  expect_data_error(o, "train-images-idx3-ubyte.gz", "incorrect length check");
}

// Issue 11.2: a gzip bomb grew without limit. The IDX header bounds what the
// file may hold, a plain read_maybe_gzip its max_bytes.
TEST_F(Hostile, GzipBombStopsAtTheAnnouncedSize) {
  TempDir dir("gzbomb");
  const auto header = qtool_samples::idx_bytes({10, 2, 2}, {});  // announces 40 bytes
  write_bytes(dir / "train-images-idx3-ubyte.gz", gzip_bomb(header, 512));
  write_bytes(dir / "train-labels-idx1-ubyte", qtool_samples::idx_bytes({10}, std::vector<uint8_t>(10, 1)));
  ASSERT_LT(fs::file_size(dir / "train-images-idx3-ubyte.gz"), 2u << 20);
  const uint64_t headroom = uint64_t(256) << 20;  // half the bomb
  auto o = run_bounded([&] { make_dataset("idx", "idx", {{"root", dir.path()}}, true); }, headroom);
  expect_data_error(o, "train-images-idx3-ubyte.gz", "more data than the 40 bytes the header announces");
  o = run_bounded([&] { qt::read_maybe_gzip(dir / "train-images-idx3-ubyte.gz", 1 << 20); }, headroom);
  expect_data_error(o, "train-images-idx3-ubyte.gz", "decompresses to more than 1048576 bytes");
  // A header announcing more than max_bytes is refused before any payload.
  write_bytes(dir / "train-images-idx3-ubyte.gz", gzip_bomb(qtool_samples::idx_bytes({32768, 256, 256}, {}), 1));
  o = run_bounded([&] { make_dataset("idx", "idx", {{"root", dir.path()}}, true); }, headroom);
  expect_data_error(o, "train-images-idx3-ubyte.gz", "32768 x 256 x 256 elements, more than max_bytes = 1073741824");
  // The bomb's own content is intact: it is the cap that stops it.
  EXPECT_EQ(qt::read_maybe_gzip(dir / "train-images-idx3-ubyte.gz").size(), 16u + (1u << 20));
}

// Issue 11.3: whole records, every label byte in range.
TEST_F(Hostile, CifarRecordsAndBothLabelBytesAreChecked) {
  TempDir dir("chost");
  std::vector<uint8_t> rec(2 * 3074, 9);
  rec[0] = 3;        // coarse
  rec[1] = 42;       // fine
  rec[3074] = 200;   // coarse label of record 1: out of range, though `label = "fine"`
  rec[3075] = 7;
  write_bytes(dir / "train.bin", rec);
  auto o = run_bounded([&] {
    make_dataset("cifar", "cifar", {{"root", dir.path()}, {"variant", "cifar100"}}, true);
  });
  expect_data_error(o, "train.bin", "record 1 has coarse label 200, outside [0, 20)");
  rec[3074] = 1;
  rec[3075] = 100;
  write_bytes(dir / "train.bin", rec);
  o = run_bounded([&] { make_dataset("cifar", "cifar", {{"root", dir.path()}, {"variant", "cifar100"}}, true); });
  expect_data_error(o, "train.bin", "record 1 has fine label 100, outside [0, 100)");
  rec.resize(3074 + 1000);  // half-copied: ends inside record 1
  write_bytes(dir / "train.bin", rec);
  o = run_bounded([&] { make_dataset("cifar", "cifar", {{"root", dir.path()}, {"variant", "cifar100"}}, true); });
  expect_data_error(o, "train.bin", "4074 bytes is not a positive multiple of the 3074-byte record");
}

// Issue 11.4: a 65500x65500 JPEG header (a few hundred bytes) made every
// worker allocate gigabytes.
TEST_F(Hostile, JpegClaimingHugeDimensionsIsRefusedFromTheHeader) {
  TempDir dir("jbomb");
  const auto bomb = jpeg_claiming(65500, 65500);
  ASSERT_LT(bomb.size(), 1000u);
  image_folder(dir, {{"bomb.jpg", bomb}});
  auto o = run_bounded([&] {
    auto val = make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, false);
    get(val, 1);
  });
  expect_data_error(o, "bomb.jpg", "image is 65500x65500 = 4290250000 pixels, more than max_image_pixels = 178956970");
  // The cap is an option; the default lets ordinary images through.
  o = run_bounded([&] {
    auto val = make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}, {"max_image_pixels", 1000}}, false);
    get(val, 0);
  });
  expect_data_error(o, "a_ok.jpg", "40x30 = 1200 pixels, more than max_image_pixels = 1000");
  auto val = make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, false);
  EXPECT_EQ(get(val, 0).image.sizes(), (std::vector<int64_t>{3, 224, 224}));
}

TEST_F(Hostile, PngClaimingHugeDimensionsIsRefusedFromTheHeader) {
  TempDir dir("pbomb");
  const auto bomb = png_claiming(40000, 40000);
  ASSERT_LT(bomb.size(), 1000u);
  image_folder(dir, {{"bomb.png", bomb}});
  auto o = run_bounded([&] {
    auto val = make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, false);
    get(val, 1);
  });
  expect_data_error(o, "bomb.png", "image is 40000x40000 = 1600000000 pixels, more than max_image_pixels");
  // Under the cap the same lie is a truncated PNG: an error, not a grey image.
  write_bytes(dir / "val/cat/bomb.png", png_claiming(300, 200));
  o = run_bounded([&] {
    auto val = make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, false);
    get(val, 1);
  });
  expect_data_error(o, "bomb.png", "corrupt PNG");
}

// Issue 11.4: a half-copied JPEG decoded silently with its missing part grey.
TEST_F(Hostile, TruncatedJpegIsAnErrorUnlessAllowed) {
  auto jpeg = qtool_samples::encode_jpeg(qtool_samples::smooth_rgb(64, 64, 7), 64, 64);
  jpeg.resize(jpeg.size() * 2 / 3);
  for (const bool progressive : {false, true}) {
    auto cut = qtool_samples::encode_jpeg(qtool_samples::smooth_rgb(64, 64, 7), 64, 64, 90, progressive);
    cut.resize(cut.size() * 2 / 3);
    std::string err;
    try {
      qt::read_image_info(cut, "/x/cut.jpg");
    } catch (const qsdk::Error& e) {
      EXPECT_EQ(e.category(), qsdk::ErrorCategory::data);
      err = e.place() + " | " + e.message();
    }
    EXPECT_NE(err.find("/x/cut.jpg | truncated JPEG"), std::string::npos) << err;
    // Also when the crop lies in the part that is there: the verdict must
    // not depend on the random crop.
    EXPECT_THROW(qt::decode_region(cut, "/x/cut.jpg", qt::Box{0, 0, 16, 16}, 8, 8, false), qsdk::Error);
    qt::DecodeLimits lenient;
    lenient.allow_truncated = true;
    EXPECT_EQ(qt::decode_image(cut, "/x/cut.jpg", lenient).width, 64);
  }
  TempDir dir("jcut");
  image_folder(dir, {{"cut.jpg", jpeg}});
  auto o = run_bounded([&] {
    auto val = make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, false);
    get(val, 1);
  });
  expect_data_error(o, "cut.jpg", "truncated JPEG: the data ends before the end-of-image marker");
  auto lenient = make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}, {"allow_truncated_images", true}},
                              false);
  EXPECT_EQ(get(lenient, 1).image.sizes(), (std::vector<int64_t>{3, 224, 224}));
}

// Issue 11.4: thousands of progressive scans in a small file (each a pass
// over the coefficients): at most 500, as TurboJPEG's TJFLAG_LIMITSCANS.
TEST_F(Hostile, ProgressiveJpegWithTooManyScansIsRefused) {
  const auto jpeg = qtool_samples::encode_jpeg(qtool_samples::smooth_rgb(32, 32, 3), 32, 32, 90, /*progressive=*/true);
  // Find the last scan: its SOS marker up to the EOI.
  size_t last_sos = 0;
  for (size_t i = 0; i + 1 < jpeg.size(); ++i)
    if (jpeg[i] == 0xFF && jpeg[i + 1] == 0xDA) last_sos = i;
  ASSERT_GT(last_sos, 0u);
  ASSERT_EQ(jpeg[jpeg.size() - 2], 0xFF);
  ASSERT_EQ(jpeg[jpeg.size() - 1], 0xD9);
  std::vector<uint8_t> flood(jpeg.begin(), jpeg.end() - 2);
  const std::vector<uint8_t> scan(jpeg.begin() + static_cast<std::ptrdiff_t>(last_sos), jpeg.end() - 2);
  for (int i = 0; i < 600; ++i) flood.insert(flood.end(), scan.begin(), scan.end());
  flood.push_back(0xFF);
  flood.push_back(0xD9);
  // The repeated scans are legal enough for libjpeg (warnings only) ...
  qt::DecodeLimits many;
  many.max_scans = 100000;
  EXPECT_EQ(qt::decode_image(flood, "/x/flood.jpg", many).width, 32);
  // ... and refused by the default limit.
  std::string err;
  try {
    qt::decode_image(flood, "/x/flood.jpg");
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::data);
    EXPECT_FALSE(e.hint().empty());
    err = e.place() + " | " + e.message();
  }
  EXPECT_NE(err.find("/x/flood.jpg | refused JPEG: progressive JPEG has more than 500 scans"), std::string::npos)
      << err;
  EXPECT_EQ(qt::decode_image(jpeg, "/x/ok.jpg").width, 32);
}

// Issue 11.5: two links to "." in a class folder made the walk explode
// (2^depth paths until PATH_MAX).
TEST_F(Hostile, SymlinkCycleInAClassFolderIsRefused) {
  TempDir dir("ifloop");
  image_folder(dir, {});
  fs::create_directory_symlink(".", dir / "train/cat/loop1");
  fs::create_directory_symlink(".", dir / "train/cat/loop2");
  auto o = run_bounded([&] { make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, true); },
                       uint64_t(1) << 30, 5);
  expect_data_error(o, "train/cat/loop1", "symlink cycle: this folder leads back to");
  // A link up the tree is a cycle too.
  fs::remove(dir / "train/cat/loop1");
  fs::remove(dir / "train/cat/loop2");
  fs::create_directories(dir / "train/cat/deep");
  fs::create_directory_symlink("../..", dir / "train/cat/deep/up");
  o = run_bounded([&] { make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, true); },
                  uint64_t(1) << 30, 5);
  EXPECT_EQ(o.exit_code, 4) << o.text;
  EXPECT_EQ(o.signal, 0);
  EXPECT_NE(o.text.find("deep/up"), std::string::npos) << o.text;
}

TEST_F(Hostile, TwoLinksToOneFolderListItsImagesOnce) {
  TempDir dir("ifdiamond");
  image_folder(dir, {});
  write_bytes(dir / "shared/s.jpg", qtool_samples::encode_jpeg(qtool_samples::smooth_rgb(20, 20, 4), 20, 20));
  fs::create_directory_symlink("../../shared", dir / "train/cat/x");
  fs::create_directory_symlink("../../shared", dir / "train/cat/y");
  std::shared_ptr<qsdk::Dataset> train;
  const auto o = run_bounded([&] { make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, true); },
                             uint64_t(1) << 30, 5);
  ASSERT_EQ(o.exit_code, 0) << o.text;
  ASSERT_EQ(o.signal, 0);
  train = make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, true);
  EXPECT_EQ(train->size(), 2);  // ok.jpg and x/s.jpg (y, the second way in, skipped)
  EXPECT_NE(train->describe().find("1 symlinked folder(s) skipped"), std::string::npos) << train->describe();
}
