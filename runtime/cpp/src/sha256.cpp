// sha256 of a file through OpenSSL's EVP interface (no hand-written hash).
#include <openssl/evp.h>

#include <fstream>
#include <memory>
#include <vector>

#include "siamese/error.hpp"
#include "siamese/manifest.hpp"

namespace siamese {

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::Bundle, path + ": cannot be opened to check its sha256");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw Error(ErrorCode::Internal, "OpenSSL: cannot initialise sha256");
  }
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize got = in.gcount();
    if (got > 0 && EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(got)) != 1) {
      throw Error(ErrorCode::Internal, "OpenSSL: sha256 update failed on " + path);
    }
  }
  if (in.bad()) throw Error(ErrorCode::Bundle, path + ": read error while checking its sha256");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1) {
    throw Error(ErrorCode::Internal, "OpenSSL: sha256 final failed on " + path);
  }
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += digits[digest[i] >> 4];
    hex += digits[digest[i] & 0xf];
  }
  return hex;
}

}  // namespace siamese
