/* siamese_runtime.h: the C ABI of the siamese-edge runtime, for C, Rust, Go, C# and other FFIs.
 *
 * Handles are opaque; every function returns a siamese_status (SIAMESE_OK = 0) and never lets a C++ exception
 * out. After a failure, siamese_last_error() holds a message naming the file or value (per thread, valid until
 * the next call into the library on that thread). Strings are UTF-8 paths; float arrays are row-major.
 */
#ifndef SIAMESE_RUNTIME_H
#define SIAMESE_RUNTIME_H

#include <stddef.h>

#if defined(_WIN32)
#define SIAMESE_API __declspec(dllexport)
#else
#define SIAMESE_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum siamese_status {
  SIAMESE_OK = 0,
  SIAMESE_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, too small a buffer, bad option */
  SIAMESE_ERR_BUNDLE = 2,           /* missing or malformed bundle/manifest, sha256 mismatch */
  SIAMESE_ERR_IMAGE = 3,            /* missing, unreadable or corrupt image file */
  SIAMESE_ERR_BACKEND = 4,          /* backend not built in, or cannot run this bundle here */
  SIAMESE_ERR_INTERNAL = 5
} siamese_status;

typedef struct siamese_verifier siamese_verifier;
typedef struct siamese_gallery siamese_gallery;

typedef struct siamese_verification {
  float score;          /* in the manifest's units: a probability or a distance */
  int match;            /* 1: the same identity at the threshold */
  double threshold;
  int same_when_high;   /* 1: higher scores mean the same identity; 0: lower ones do */
  int is_distance;      /* 1: the score is a distance; 0: a probability */
} siamese_verification;

SIAMESE_API const char* siamese_version(void);
SIAMESE_API const char* siamese_backends(void); /* comma-separated, e.g. "onnxruntime,opencv" */
SIAMESE_API const char* siamese_last_error(void);
SIAMESE_API const char* siamese_status_name(siamese_status status);

/* backend: "auto", "opencv", "onnxruntime", "openvino" or "tensorrt" (NULL = "auto"). Checks every file's sha256. */
SIAMESE_API siamese_status siamese_verifier_open(const char* bundle_dir, const char* backend, siamese_verifier** out);
/* As siamese_verifier_open, with a precision ("fp32", "bf16" or "int8" for openvino; NULL = the backend's default)
 * and a CPU thread count (0 = the library's default). A precision the backend cannot run here is
 * SIAMESE_ERR_BACKEND, with the reason in siamese_last_error(); an unknown name SIAMESE_ERR_INVALID_ARGUMENT. */
SIAMESE_API siamese_status siamese_verifier_open_with(const char* bundle_dir, const char* backend, const char* precision,
                                                      int threads, siamese_verifier** out);
/* The precision the verifier's backend runs ("fp32", "fp16", "bf16", "int8"). */
SIAMESE_API const char* siamese_verifier_precision(const siamese_verifier* verifier);
SIAMESE_API void siamese_verifier_close(siamese_verifier* verifier);
SIAMESE_API int siamese_verifier_embedding_dim(const siamese_verifier* verifier);
SIAMESE_API const char* siamese_verifier_backend(const siamese_verifier* verifier);
/* Embed one image file into out[0..dim). capacity: floats available at out. */
SIAMESE_API siamese_status siamese_verifier_embed_file(siamese_verifier* verifier, const char* path, float* out,
                                                       size_t capacity);
/* n pairs of dim-sized embeddings -> n scores. */
SIAMESE_API siamese_status siamese_verifier_score(siamese_verifier* verifier, const float* a, const float* b, size_t n,
                                                  float* scores);
SIAMESE_API siamese_status siamese_verifier_verify_files(siamese_verifier* verifier, const char* image_a,
                                                         const char* image_b, siamese_verification* out);

/* A gallery of enrolled identities; aggregate NULL = the default for the bundle's head ("template" for a distance
 * head, "mean" for a learned one). It uses the verifier: destroy the gallery before closing the verifier. */
SIAMESE_API siamese_status siamese_gallery_create(siamese_verifier* verifier, const char* aggregate,
                                                  siamese_gallery** out);
SIAMESE_API void siamese_gallery_destroy(siamese_gallery* gallery);
SIAMESE_API siamese_status siamese_gallery_enroll_file(siamese_gallery* gallery, const char* identity, const char* path);
/* The best identity into identity (NUL-terminated, "unknown" when none passes the threshold) and its score. */
SIAMESE_API siamese_status siamese_gallery_identify_file(siamese_gallery* gallery, const char* path, char* identity,
                                                         size_t capacity, float* score, int* match);

#ifdef __cplusplus
}
#endif

#endif /* SIAMESE_RUNTIME_H */
