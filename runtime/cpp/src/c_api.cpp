// The C ABI: every entry point catches everything and turns it into a status and a thread-local message.
#include "siamese_runtime.h"

#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "siamese/gallery.hpp"
#include "siamese/error.hpp"
#include "siamese/version.hpp"

struct siamese_verifier {
  std::unique_ptr<siamese::Verifier> impl;
  std::string backend, precision;
};

struct siamese_gallery {
  std::unique_ptr<siamese::Gallery> impl;
};

namespace {

thread_local std::string last_error;

siamese_status fail(siamese_status status, const std::string& message) {
  last_error = message;
  return status;
}

template <typename F>
siamese_status guarded(F&& body) noexcept {
  try {
    last_error.clear();
    body();
    return SIAMESE_OK;
  } catch (const siamese::Error& e) {
    return fail(static_cast<siamese_status>(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    return fail(SIAMESE_ERR_INTERNAL, "out of memory");
  } catch (const std::exception& e) {
    return fail(SIAMESE_ERR_INTERNAL, e.what());
  } catch (...) {
    return fail(SIAMESE_ERR_INTERNAL, "unknown error");
  }
}

void require(const void* p, const char* what) {
  if (!p) throw siamese::Error(siamese::ErrorCode::InvalidArgument, std::string(what) + " is NULL");
}

}  // namespace

extern "C" {

const char* siamese_version(void) { return SIAMESE_RUNTIME_VERSION; }
const char* siamese_backends(void) { return SIAMESE_RUNTIME_BACKENDS; }
const char* siamese_last_error(void) { return last_error.c_str(); }

const char* siamese_status_name(siamese_status status) {
  switch (status) {
    case SIAMESE_OK: return "ok";
    case SIAMESE_ERR_INVALID_ARGUMENT: return "invalid argument";
    case SIAMESE_ERR_BUNDLE: return "bad bundle";
    case SIAMESE_ERR_IMAGE: return "bad image";
    case SIAMESE_ERR_BACKEND: return "backend unavailable";
    case SIAMESE_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

siamese_status siamese_verifier_open_with(const char* bundle_dir, const char* backend, const char* precision,
                                          int threads, siamese_verifier** out) {
  return guarded([&] {
    require(bundle_dir, "bundle_dir");
    require(out, "out");
    *out = nullptr;
    if (threads < 0) throw siamese::Error(siamese::ErrorCode::InvalidArgument, "threads: expected >= 0");
    siamese::BackendOptions options;
    options.threads = threads;
    options.precision = precision ? precision : "";
    auto v = std::make_unique<siamese_verifier>();
    v->impl = std::make_unique<siamese::Verifier>(bundle_dir, backend ? backend : "auto", options);
    v->backend = v->impl->backend().name();
    v->precision = v->impl->backend().precision();
    *out = v.release();
  });
}

siamese_status siamese_verifier_open(const char* bundle_dir, const char* backend, siamese_verifier** out) {
  return siamese_verifier_open_with(bundle_dir, backend, nullptr, 0, out);
}

void siamese_verifier_close(siamese_verifier* verifier) { delete verifier; }

int siamese_verifier_embedding_dim(const siamese_verifier* verifier) {
  return verifier ? verifier->impl->manifest().embedding_dim : 0;
}

const char* siamese_verifier_backend(const siamese_verifier* verifier) { return verifier ? verifier->backend.c_str() : ""; }
const char* siamese_verifier_precision(const siamese_verifier* verifier) {
  return verifier ? verifier->precision.c_str() : "";
}

siamese_status siamese_verifier_embed_file(siamese_verifier* verifier, const char* path, float* out, size_t capacity) {
  return guarded([&] {
    require(verifier, "verifier");
    require(path, "path");
    require(out, "out");
    const auto dim = static_cast<size_t>(verifier->impl->manifest().embedding_dim);
    if (capacity < dim) {
      throw siamese::Error(siamese::ErrorCode::InvalidArgument,
                           "embed: capacity " + std::to_string(capacity) + " floats, the embedding has " + std::to_string(dim));
    }
    const siamese::Tensor e = verifier->impl->embed_files({path});
    std::memcpy(out, e.data.data(), dim * sizeof(float));
  });
}

siamese_status siamese_verifier_score(siamese_verifier* verifier, const float* a, const float* b, size_t n, float* scores) {
  return guarded([&] {
    require(verifier, "verifier");
    require(a, "a");
    require(b, "b");
    require(scores, "scores");
    if (n == 0) return;
    const auto dim = static_cast<int64_t>(verifier->impl->manifest().embedding_dim);
    siamese::Tensor ea({static_cast<int64_t>(n), dim}), eb({static_cast<int64_t>(n), dim});
    std::memcpy(ea.data.data(), a, ea.data.size() * sizeof(float));
    std::memcpy(eb.data.data(), b, eb.data.size() * sizeof(float));
    const std::vector<float> s = verifier->impl->score(ea, eb);
    std::memcpy(scores, s.data(), n * sizeof(float));
  });
}

siamese_status siamese_verifier_verify_files(siamese_verifier* verifier, const char* image_a, const char* image_b,
                                             siamese_verification* out) {
  return guarded([&] {
    require(verifier, "verifier");
    require(image_a, "image_a");
    require(image_b, "image_b");
    require(out, "out");
    const siamese::Verification v = verifier->impl->verify_files(image_a, image_b);
    out->score = v.score;
    out->match = v.match ? 1 : 0;
    out->threshold = v.spec.threshold;
    out->same_when_high = v.spec.same_when == "high" ? 1 : 0;
    out->is_distance = v.spec.kind == "distance" ? 1 : 0;
  });
}

siamese_status siamese_gallery_create(siamese_verifier* verifier, const char* aggregate, siamese_gallery** out) {
  return guarded([&] {
    require(verifier, "verifier");
    require(out, "out");
    *out = nullptr;
    auto g = std::make_unique<siamese_gallery>();
    g->impl = std::make_unique<siamese::Gallery>(*verifier->impl, aggregate ? aggregate : "");
    *out = g.release();
  });
}

void siamese_gallery_destroy(siamese_gallery* gallery) { delete gallery; }

siamese_status siamese_gallery_enroll_file(siamese_gallery* gallery, const char* identity, const char* path) {
  return guarded([&] {
    require(gallery, "gallery");
    require(identity, "identity");
    require(path, "path");
    gallery->impl->enroll_files(identity, {path});
  });
}

siamese_status siamese_gallery_identify_file(siamese_gallery* gallery, const char* path, char* identity, size_t capacity,
                                             float* score, int* match) {
  return guarded([&] {
    require(gallery, "gallery");
    require(path, "path");
    require(identity, "identity");
    const siamese::Identification r = gallery->impl->identify_file(path, 1);
    const std::string label = r.label();
    if (capacity < label.size() + 1) {
      throw siamese::Error(siamese::ErrorCode::InvalidArgument, "identify: identity buffer of " + std::to_string(capacity) +
                                                                    " bytes, the name needs " + std::to_string(label.size() + 1));
    }
    std::memcpy(identity, label.c_str(), label.size() + 1);
    if (score) *score = r.candidates.empty() ? 0.0f : r.candidates.front().score;
    if (match) *match = r.identity ? 1 : 0;
  });
}

}  // extern "C"
