/* The C ABI from C: open, embed, score, verify, gallery, and error codes with messages.
 * usage: test_c_api BUNDLE_DIR IMAGE_A IMAGE_B */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese_runtime.h"

static int failures = 0;

static void expect(int ok, const char* what) {
  printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) failures++;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s BUNDLE_DIR IMAGE_A IMAGE_B\n", argv[0]);
    return 2;
  }
  const char *bundle = argv[1], *a = argv[2], *b = argv[3];
  printf("siamese_runtime %s, backends %s\n", siamese_version(), siamese_backends());

  siamese_verifier* v = NULL;
  siamese_status s = siamese_verifier_open("no/such/bundle", "opencv", &v);
  expect(s == SIAMESE_ERR_BUNDLE && v == NULL && strstr(siamese_last_error(), "no/such/bundle") != NULL,
         "a missing bundle: SIAMESE_ERR_BUNDLE naming the folder");
  printf("      message: %s\n", siamese_last_error());
  expect(siamese_verifier_open(NULL, NULL, &v) == SIAMESE_ERR_INVALID_ARGUMENT, "NULL bundle_dir: invalid argument");
  expect(siamese_verifier_open(bundle, "warp-drive", &v) == SIAMESE_ERR_INVALID_ARGUMENT, "unknown backend: invalid argument");

  expect(siamese_verifier_open_with(bundle, "auto", "int4", 0, &v) == SIAMESE_ERR_INVALID_ARGUMENT && v == NULL &&
             strstr(siamese_last_error(), "int4") != NULL,
         "an unknown precision: invalid argument naming it");
  expect(siamese_verifier_open_with(bundle, "opencv", "int8", 0, &v) == SIAMESE_ERR_BACKEND && v == NULL,
         "int8 on a backend that runs fp32 only: SIAMESE_ERR_BACKEND");
  if (strstr(siamese_backends(), "openvino") != NULL) {  /* the test bundle has an INT8 graph */
    s = siamese_verifier_open_with(bundle, "openvino", "int8", 1, &v);
    expect(s == SIAMESE_OK && strcmp(siamese_verifier_backend(v), "openvino-cpu") == 0 &&
               strcmp(siamese_verifier_precision(v), "int8") == 0,
           "open the bundle on openvino at int8, one thread");
    siamese_verifier_close(v);
    v = NULL;
  }

  s = siamese_verifier_open_with(bundle, "opencv", NULL, 0, &v);
  expect(s == SIAMESE_OK && v != NULL && strcmp(siamese_verifier_precision(v), "fp32") == 0, "open the bundle on opencv");
  if (s != SIAMESE_OK) {
    printf("      %s: %s\n", siamese_status_name(s), siamese_last_error());
    return 1;
  }
  const int dim = siamese_verifier_embedding_dim(v);
  expect(dim > 0 && strcmp(siamese_verifier_backend(v), "opencv-dnn") == 0, "dim and backend name");

  float* ea = calloc((size_t)dim, sizeof(float));
  float* eb = calloc((size_t)dim, sizeof(float));
  expect(siamese_verifier_embed_file(v, a, ea, (size_t)dim) == SIAMESE_OK, "embed image A");
  expect(siamese_verifier_embed_file(v, b, eb, (size_t)dim) == SIAMESE_OK, "embed image B");
  expect(siamese_verifier_embed_file(v, a, ea, (size_t)dim - 1) == SIAMESE_ERR_INVALID_ARGUMENT, "too small a buffer");
  expect(siamese_verifier_embed_file(v, "no_such.png", ea, (size_t)dim) == SIAMESE_ERR_IMAGE &&
             strstr(siamese_last_error(), "no_such.png") != NULL,
         "a missing image: SIAMESE_ERR_IMAGE naming the file");
  siamese_verifier_embed_file(v, a, ea, (size_t)dim);

  float score = -1.0f;
  expect(siamese_verifier_score(v, ea, eb, 1, &score) == SIAMESE_OK && isfinite(score), "score a pair of embeddings");
  siamese_verification r;
  expect(siamese_verifier_verify_files(v, a, b, &r) == SIAMESE_OK, "verify_files");
  expect(r.score == score, "verify_files gives the score of embed + score");
  expect(r.match == (r.same_when_high ? r.score >= r.threshold : r.score <= r.threshold), "the decision follows the threshold");
  siamese_verification same;
  expect(siamese_verifier_verify_files(v, a, a, &same) == SIAMESE_OK && same.match == 1, "an image matches itself");
  printf("      A vs B: score %g (%s), threshold %g, match %d; A vs A: %g\n", r.score,
         r.is_distance ? "distance" : "probability", r.threshold, r.match, same.score);

  siamese_gallery* g = NULL;
  expect(siamese_gallery_create(v, NULL, &g) == SIAMESE_OK, "create a gallery");
  expect(siamese_gallery_enroll_file(g, "alice", a) == SIAMESE_OK, "enroll alice");
  expect(siamese_gallery_enroll_file(g, "bob", "no_such.png") == SIAMESE_ERR_IMAGE, "enroll a missing image: error");
  char who[64];
  int match = 0;
  expect(siamese_gallery_identify_file(g, a, who, sizeof who, &score, &match) == SIAMESE_OK && strcmp(who, "alice") == 0 &&
             match == 1,
         "identify alice's own image as alice");
  expect(siamese_gallery_identify_file(g, a, who, 3, &score, &match) == SIAMESE_ERR_INVALID_ARGUMENT, "too small a name buffer");
  siamese_gallery_destroy(g);
  siamese_verifier_close(v);
  siamese_verifier_close(NULL);
  free(ea);
  free(eb);
  printf("%d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}
