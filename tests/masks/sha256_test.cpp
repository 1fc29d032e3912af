// SHA-256 against the FIPS 180-4 / NIST example vectors.
#include "samdeblur/masks/sha256.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "samdeblur/core/error.h"
#include "support/test_support.h"

using namespace samdeblur::masks;

TEST(Sha256, NistVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, ChunkedUpdatesAndFilesAgree) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += static_cast<char>((i * 37) % 256);
  Sha256 chunked;
  for (std::size_t pos = 0; pos < text.size(); pos += 63) chunked.update(text.substr(pos, 63));
  EXPECT_EQ(chunked.hex_digest(), sha256_hex(text));
  const samdeblur::test::TempDir tmp("sha256");
  const auto path = tmp / "test.bin";
  samdeblur::test::write_text(path, text);
  EXPECT_EQ(sha256_file_hex(path.string()), sha256_hex(text));
  std::filesystem::remove(path);
  EXPECT_THROW(sha256_file_hex(path.string()), samdeblur::FileError);
}
