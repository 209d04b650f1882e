// The siamese-edge C++ runtime: everything in one include.
#pragma once

#include "siamese/backend.hpp"
#include "siamese/error.hpp"
#include "siamese/gallery.hpp"
#include "siamese/manifest.hpp"
#include "siamese/preprocess.hpp"
#include "siamese/reference.hpp"
#include "siamese/scoring.hpp"
#include "siamese/verifier.hpp"
#include "siamese/version.hpp"
