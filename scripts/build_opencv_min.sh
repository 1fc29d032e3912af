#!/usr/bin/env bash
# Builds the minimal OpenCV that the GPU bundle ships (README, "LibTorch versions"):
# OpenCV 4.6.0, Debian bookworm's version, with only the modules samdeblur uses (core,
# imgproc, imgcodecs, video, ximgproc, and what ximgproc needs: calib3d, features2d,
# flann), shared libraries, and no optional third-party library except the JPEG, PNG and
# zlib that samdeblur links itself. Debian's OpenCV pulls in GDAL, OpenBLAS, ICU, x265,
# HDF5, Qt, FFmpeg, ... (242 MiB of libraries); this one needs only those three.
#
# The sources are Debian's source package of the installed OpenCV (apt-get source, with a
# private deb-src list made from the system's Debian entries; no other download). CPU
# baseline, dispatch list and -O2 are Debian's (its cv2.getBuildInformation()), and the
# JPEG / PNG / zlib the same system libraries, so results equal Debian's OpenCV.
# Idempotent: a finished install with the same options is reused.
#
# Usage: scripts/build_opencv_min.sh        prints OpenCV_DIR (for -DOpenCV_DIR=) last
# Environment:
#   SAMDEBLUR_OPENCV_DEB      Debian source version (default: the installed libopencv-dev's,
#                             4.6.0+dfsg-12 on bookworm)
#   SAMDEBLUR_OPENCV_PREFIX   install folder (default ~/.cache/samdeblur/opencv-min-<4.6.0>)
#   JOBS, NICE                parallel jobs (default nproc) and nice level (default 10)
set -euo pipefail
DEB_VERSION="${SAMDEBLUR_OPENCV_DEB:-$(dpkg-query -W -f='${Version}' libopencv-dev 2>/dev/null || echo 4.6.0+dfsg-12)}"
CV_VERSION="${DEB_VERSION%%+*}"
CV_VERSION="${CV_VERSION%%-*}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/samdeblur"
PREFIX="${SAMDEBLUR_OPENCV_PREFIX:-$CACHE/opencv-min-$CV_VERSION}"
WORK="$CACHE/opencv-min-work-$DEB_VERSION"
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
ID="$DEB_VERSION ${OPTIONS[*]}"
CONFIG_DIR="$PREFIX/lib/cmake/opencv4"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$ID" && -f "$CONFIG_DIR/OpenCVConfig.cmake" ]]; then
  log "reusing $PREFIX"
  echo "$CONFIG_DIR"
  exit 0
fi

# 1. Sources: Debian's orig tarballs (OpenCV and its contrib modules).
SRC="$WORK/src"
if [[ ! -f "$SRC/opencv/CMakeLists.txt" || ! -d "$SRC/contrib/modules/ximgproc" ]]; then
  APT="$WORK/apt"
  mkdir -p "$APT/parts" "$APT/lists/partial" "$WORK/download"
  # deb-src twins of the system's Debian entries (one-line and deb822 formats).
  sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list >"$APT/sources.list" 2>/dev/null || true
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$APT/parts/debian.sources"
  fi
  APT_OPTS=(-o Dir::Etc::SourceList="$APT/sources.list" -o Dir::Etc::SourceParts="$APT/parts"
    -o Dir::State::Lists="$APT/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
  log "fetching Debian's opencv $DEB_VERSION source package"
  apt-get "${APT_OPTS[@]}" -qq update
  (cd "$WORK/download" && apt-get "${APT_OPTS[@]}" -qq source --download-only "opencv=$DEB_VERSION")
  rm -rf "$SRC"
  mkdir -p "$SRC/opencv" "$SRC/contrib"
  tar -xJf "$(ls "$WORK"/download/opencv_*.orig.tar.xz)" -C "$SRC/opencv" --strip-components=1
  tar -xJf "$(ls "$WORK"/download/opencv_*.orig-contrib.tar.xz)" -C "$SRC/contrib" \
    --strip-components=1
fi

# 2. Configure, build and install (a fresh build folder: the options may have changed).
BUILD="$WORK/build"
rm -rf "$BUILD" "$PREFIX"
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
cmake -S "$SRC/opencv" -B "$BUILD" "${GENERATOR[@]}" -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  -DOPENCV_EXTRA_MODULES_PATH="$SRC/contrib/modules" "${OPTIONS[@]}" >"$WORK/configure.log"
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
