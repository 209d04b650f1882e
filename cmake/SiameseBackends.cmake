# Finds the optional backends and sets SIAMESE_HAVE_ONNXRUNTIME / SIAMESE_HAVE_TENSORRT with imported targets
# siamese::onnxruntime and siamese::tensorrt.

# ONNX Runtime: its CMake package (Debian 13's libonnxruntime-dev, vcpkg, a source build), else ONNXRUNTIME_ROOT
# pointing at the official release archive (include/ and lib/).
set(SIAMESE_HAVE_ONNXRUNTIME OFF)
if(SIAMESE_WITH_ONNXRUNTIME)
  set(ONNXRUNTIME_ROOT "$ENV{ONNXRUNTIME_ROOT}" CACHE PATH "ONNX Runtime release folder (include/, lib/)")
  find_package(onnxruntime CONFIG QUIET)
  if(TARGET onnxruntime::onnxruntime)
    add_library(siamese::onnxruntime INTERFACE IMPORTED)
    target_link_libraries(siamese::onnxruntime INTERFACE onnxruntime::onnxruntime)
    set(SIAMESE_HAVE_ONNXRUNTIME ON)
  else()
    find_path(ONNXRUNTIME_INCLUDE_DIR onnxruntime_cxx_api.h
              HINTS "${ONNXRUNTIME_ROOT}/include" PATH_SUFFIXES onnxruntime onnxruntime/core/session)
    find_library(ONNXRUNTIME_LIBRARY onnxruntime HINTS "${ONNXRUNTIME_ROOT}/lib")
    if(ONNXRUNTIME_INCLUDE_DIR AND ONNXRUNTIME_LIBRARY)
      add_library(siamese::onnxruntime UNKNOWN IMPORTED)
      set_target_properties(siamese::onnxruntime PROPERTIES IMPORTED_LOCATION "${ONNXRUNTIME_LIBRARY}"
                            INTERFACE_INCLUDE_DIRECTORIES "${ONNXRUNTIME_INCLUDE_DIR}")
      set(SIAMESE_HAVE_ONNXRUNTIME ON)
    endif()
  endif()
  message(STATUS "siamese_runtime: ONNX Runtime backend ${SIAMESE_HAVE_ONNXRUNTIME}")
endif()

# TensorRT 10/11 with the CUDA runtime: NvInfer.h and libnvinfer (JetPack and the TensorRT packages put them in
# the system paths; TENSORRT_ROOT for a tar install).
set(SIAMESE_HAVE_TENSORRT OFF)
if(SIAMESE_WITH_TENSORRT)
  set(TENSORRT_ROOT "$ENV{TENSORRT_ROOT}" CACHE PATH "TensorRT folder (include/, lib/)")
  find_package(CUDAToolkit QUIET)
  find_path(TENSORRT_INCLUDE_DIR NvInfer.h HINTS "${TENSORRT_ROOT}/include")
  find_library(TENSORRT_LIBRARY nvinfer HINTS "${TENSORRT_ROOT}/lib")
  if(TENSORRT_INCLUDE_DIR AND TENSORRT_LIBRARY AND TARGET CUDA::cudart)
    add_library(siamese::tensorrt UNKNOWN IMPORTED)
    set_target_properties(siamese::tensorrt PROPERTIES IMPORTED_LOCATION "${TENSORRT_LIBRARY}"
                          INTERFACE_INCLUDE_DIRECTORIES "${TENSORRT_INCLUDE_DIR}"
                          INTERFACE_LINK_LIBRARIES CUDA::cudart)
    set(SIAMESE_HAVE_TENSORRT ON)
  endif()
  message(STATUS "siamese_runtime: TensorRT backend ${SIAMESE_HAVE_TENSORRT}")
endif()
