# Finds the optional backends and sets SIAMESE_HAVE_ONNXRUNTIME / SIAMESE_HAVE_OPENVINO / SIAMESE_HAVE_TENSORRT with
# imported targets siamese::onnxruntime, siamese::openvino and siamese::tensorrt.

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

# OpenVINO: a system install (its OpenVINOConfig.cmake: apt/yum packages, the archive's setupvars, OpenVINO_DIR),
# else the SDK inside the openvino wheel of the project's Python (SIAMESE_PYTHON, else the Python 3 found): the
# wheel ships the C++ headers, libraries and CMake config, so `pip install openvino` is all a machine needs.
set(SIAMESE_HAVE_OPENVINO OFF)
if(SIAMESE_WITH_OPENVINO)
  find_package(OpenVINO CONFIG QUIET COMPONENTS Runtime)
  if(NOT TARGET openvino::runtime)
    set(python "${SIAMESE_PYTHON}")
    if(NOT EXISTS "${python}")
      find_package(Python3 QUIET COMPONENTS Interpreter)
      set(python "${Python3_EXECUTABLE}")
    endif()
    if(python)
      execute_process(
        COMMAND "${python}" -c "import os, openvino; print(os.path.join(os.path.dirname(openvino.__file__), 'cmake'))"
        OUTPUT_VARIABLE wheel_dir RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
      if(rc EQUAL 0 AND EXISTS "${wheel_dir}/OpenVINOConfig.cmake")
        unset(OpenVINO_DIR CACHE)
        find_package(OpenVINO CONFIG QUIET COMPONENTS Runtime PATHS "${wheel_dir}" NO_DEFAULT_PATH)
      endif()
    endif()
  endif()
  if(TARGET openvino::runtime)
    add_library(siamese::openvino INTERFACE IMPORTED)
    target_link_libraries(siamese::openvino INTERFACE openvino::runtime)
    set(SIAMESE_HAVE_OPENVINO ON)
    # the folder of libopenvino.so, for the installed library's RUNPATH: INSTALL_RPATH_USE_LINK_PATH leaves out
    # folders inside the project, and the wheel's libs/ is inside it when the venv is (.venv, as make test has it)
    get_target_property(_ov_configs openvino::runtime IMPORTED_CONFIGURATIONS)
    set(SIAMESE_OPENVINO_LIBDIR "")
    foreach(_ov_config IN LISTS _ov_configs ITEMS "")
      if(_ov_config)
        get_target_property(_ov_location openvino::runtime IMPORTED_LOCATION_${_ov_config})
      else()
        get_target_property(_ov_location openvino::runtime IMPORTED_LOCATION)
      endif()
      if(_ov_location AND NOT SIAMESE_OPENVINO_LIBDIR)
        get_filename_component(SIAMESE_OPENVINO_LIBDIR "${_ov_location}" DIRECTORY)
      endif()
    endforeach()
  endif()
  message(STATUS "siamese_runtime: OpenVINO backend ${SIAMESE_HAVE_OPENVINO} ${OpenVINO_VERSION} ${OpenVINO_DIR}")
endif()
