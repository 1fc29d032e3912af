#!/usr/bin/env bash
# Builds the minimal OpenCV that the GPU bundle ships (README, "LibTorch versions"):
# OpenCV 4.6.0, Debian bookworm's version, with only the modules samdeblur uses (core,
# imgproc, imgcodecs, video, ximgproc, and what ximgproc needs: calib3d, features2d,
# flann), shared libraries, and no optional third-party library except the JPEG, PNG and
# zlib that samdeblur links itself. Debian's OpenCV pulls in GDAL, OpenBLAS, ICU, x265,
# HDF5, Qt, FFmpeg, ... (242 MiB of libraries); this one needs only those three.
#
# The sources come from PyPI (the opencv-contrib-python sdist holds opencv/ and
# opencv_contrib/; no other download). CPU baseline, dispatch list and -O2 are Debian's
# (its cv2.getBuildInformation()), so results equal Debian's OpenCV on the same CPU.
# Idempotent: a finished install with the same options is reused.
#
# Usage: scripts/build_opencv_min.sh        prints OpenCV_DIR (for -DOpenCV_DIR=) last
# Environment:
#   SAMDEBLUR_OPENCV_VERSION  opencv-contrib-python sdist (default 4.6.0.66: OpenCV 4.6.0)
#   SAMDEBLUR_OPENCV_PREFIX   install folder (default ~/.cache/samdeblur/opencv-min-<4.6.0>)
#   JOBS, NICE                parallel jobs (default nproc) and nice level (default 10)
set -euo pipefail
PYPI_VERSION="${SAMDEBLUR_OPENCV_VERSION:-4.6.0.66}"
CV_VERSION="${PYPI_VERSION%.*}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/samdeblur"
PREFIX="${SAMDEBLUR_OPENCV_PREFIX:-$CACHE/opencv-min-$CV_VERSION}"
WORK="$CACHE/opencv-min-work-$PYPI_VERSION"
JOBS="${JOBS:-$(nproc)}"
NICE="${NICE:-10}"
log() { echo "build_opencv_min: $*" >&2; }

OPTIONS=(
  -DCMAKE_BUILD_TYPE=Release
  "-DCMAKE_C_FLAGS_RELEASE=-O2 -DNDEBUG" "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG"
  -DBUILD_SHARED_LIBS=ON
  -DBUILD_LIST=core,imgproc,imgcodecs,video,ximgproc
  # Debian's CPU flags: baseline SSE2, the rest dispatched at run time.
  -DCPU_BASELINE=SSE2 -DCPU_BASELINE_DISABLE=SSE3
  "-DCPU_DISPATCH=SSE4_1;SSE4_2;AVX;FP16;AVX2;AVX512_SKX"
  # Codecs: the system JPEG, PNG and zlib (samdeblur links the same ones), BMP/PNM/...
  # built in; nothing else.
  -DWITH_JPEG=ON -DBUILD_JPEG=OFF -DWITH_PNG=ON -DBUILD_PNG=OFF -DBUILD_ZLIB=OFF
  -DWITH_TIFF=OFF -DWITH_WEBP=OFF -DWITH_OPENJPEG=OFF -DWITH_JASPER=OFF -DWITH_OPENEXR=OFF
  -DWITH_GDAL=OFF -DWITH_GDCM=OFF -DWITH_IMGCODEC_HDR=OFF -DWITH_SPNG=OFF
  # No accelerators, GUI, video I/O or downloads.
  -DWITH_IPP=OFF -DWITH_ITT=OFF -DWITH_ADE=OFF -DWITH_OPENCL=OFF -DWITH_VA=OFF -DWITH_VA_INTEL=OFF
  -DWITH_CUDA=OFF -DWITH_EIGEN=OFF -DWITH_LAPACK=OFF -DWITH_TBB=OFF -DWITH_OPENMP=OFF
  -DWITH_PROTOBUF=OFF -DWITH_QUIRC=OFF -DWITH_FFMPEG=OFF -DWITH_GSTREAMER=OFF -DWITH_V4L=OFF
  -DWITH_1394=OFF -DWITH_GTK=OFF -DWITH_QT=OFF -DWITH_VTK=OFF -DWITH_OPENGL=OFF
  -DWITH_FREETYPE=OFF -DWITH_HDF5=OFF -DWITH_OBSENSOR=OFF
  -DBUILD_TESTS=OFF -DBUILD_PERF_TESTS=OFF -DBUILD_EXAMPLES=OFF -DBUILD_opencv_apps=OFF
  -DBUILD_DOCS=OFF -DBUILD_JAVA=OFF -DBUILD_opencv_python2=OFF -DBUILD_opencv_python3=OFF
  -DBUILD_opencv_js=OFF -DOPENCV_GENERATE_PKGCONFIG=OFF -DINSTALL_PYTHON_EXAMPLES=OFF
  -DOPENCV_ENABLE_NONFREE=OFF -DENABLE_PRECOMPILED_HEADERS=OFF
)
STAMP="$PREFIX/samdeblur-opencv-min.txt"
ID="$PYPI_VERSION ${OPTIONS[*]}"
CONFIG_DIR="$PREFIX/lib/cmake/opencv4"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$ID" && -f "$CONFIG_DIR/OpenCVConfig.cmake" ]]; then
  log "reusing $PREFIX"
  echo "$CONFIG_DIR"
  exit 0
fi

# 1. Sources: the sdist, only opencv/ and opencv_contrib/modules/ximgproc unpacked.
mkdir -p "$WORK"
SDIST="$(ls "$WORK"/opencv-contrib-python-"$PYPI_VERSION".tar.gz 2>/dev/null || true)"
if [[ -z "$SDIST" ]]; then
  log "downloading the opencv-contrib-python $PYPI_VERSION sdist from PyPI"
  python3 -m pip download --quiet --no-deps --no-binary opencv-contrib-python \
    "opencv-contrib-python==$PYPI_VERSION" -d "$WORK"
  SDIST="$WORK/opencv-contrib-python-$PYPI_VERSION.tar.gz"
fi
SRC="$WORK/opencv-contrib-python-$PYPI_VERSION"
if [[ ! -f "$SRC/opencv/CMakeLists.txt" || ! -d "$SRC/opencv_contrib/modules/ximgproc" ]]; then
  log "unpacking $SDIST"
  tar -xzf "$SDIST" -C "$WORK" --wildcards "*/opencv/*" "*/opencv_contrib/modules/ximgproc/*"
fi

# 2. Configure, build and install (a fresh build folder: the options may have changed).
BUILD="$WORK/build"
rm -rf "$BUILD" "$PREFIX"
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
cmake -S "$SRC/opencv" -B "$BUILD" "${GENERATOR[@]}" -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  -DOPENCV_EXTRA_MODULES_PATH="$SRC/opencv_contrib/modules" "${OPTIONS[@]}" >"$WORK/configure.log"
nice -n "$NICE" cmake --build "$BUILD" -j "$JOBS"
cmake --install "$BUILD" >"$WORK/install.log"

# 3. The libraries may need nothing beyond the C/C++ runtime, JPEG, PNG and zlib.
EXTRA="$(ldd "$PREFIX"/lib/libopencv_*.so.* | awk '$2 == "=>" {print $1}' | sort -u |
  grep -v -E '^(libopencv_|libc\.|libm\.|libdl\.|librt\.|libpthread\.|libstdc\+\+|libgcc_s|libjpeg\.|libpng16\.|libz\.|ld-linux|linux-vdso)' || true)"
if [[ -n "$EXTRA" ]]; then
  log "$PREFIX links more than expected: $EXTRA"
  exit 1
fi
echo "$ID" >"$STAMP"
log "installed OpenCV $CV_VERSION into $PREFIX ($(du -sh "$PREFIX/lib" | cut -f1) of libraries)"
echo "$CONFIG_DIR"
