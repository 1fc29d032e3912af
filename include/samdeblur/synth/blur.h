#pragma once
// Synthetic GoPro-like motion blur (the demo dataset builder: synth/demo_dataset.h).
//
// The GoPro dataset (Nah et al., "Deep Multi-scale CNN for Dynamic Scene
// Deblurring", CVPR 2017) averages 7-13 consecutive sharp 240 fps frames of a
// hand-held camera, in linear light (its camera response is approximated by a
// gamma of 2.2: blurry = g(mean_i g^-1(frame_i)), g(x) = x^(1/2.2)), and keeps
// the middle frame as the sharp target. We simulate the frames from one sharp
// photo: a smooth random camera trajectory (sub-pixel translations, optionally a
// small in-plane rotation) warps the photo once per frame (cv::warpAffine,
// bilinear, reflected border) and the frames are averaged the same way. The
// trajectory is centred on its middle frame, whose pose is the identity, so the
// sharp target is exactly the (cropped) photo.
//
// Deviations from real GoPro data: global (camera-only) motion, no moving
// objects, no parallax, no noise; the averaged frames are interpolated warps of
// one 8-bit photo rather than separate exposures.
//
// Determinism: everything follows from an explicit 64-bit seed through our own
// splitmix64 generator and Box-Muller normals (not std:: distributions, whose
// output differs between standard libraries), so the same seed gives the same
// bytes on every platform with the same OpenCV.
#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace samdeblur::synth {

// Small deterministic generator: splitmix64 (Steele, Lea, Flood 2014).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next_u64();
  double uniform();                             // [0, 1), 53 random bits
  double uniform(double lo, double hi);         // [lo, hi)
  int64_t uniform_int(int64_t lo, int64_t hi);  // [lo, hi] inclusive; throws Error if lo > hi
  double normal();                              // standard normal, Box-Muller

 private:
  uint64_t state_;
};

// Mixes values into one seed (splitmix64 finaliser per value); stable across platforms.
uint64_t mix_seed(uint64_t seed, uint64_t value);
// FNV-1a 64 of a string, to derive seeds from names.
uint64_t hash_name(const std::string& name);

// Camera pose of one frame relative to the middle frame: the image content is
// moved by (dx, dy) pixels and rotated by angle_deg (counter-clockwise, as
// cv::getRotationMatrix2D) about the image centre.
struct Pose {
  double dx = 0, dy = 0, angle_deg = 0;
};

struct TrajectoryOptions {
  int frames = 15;         // averaged frames (GoPro: 7-13); odd, so there is a middle frame
  double max_shift = 8.0;  // pixels: the farthest frame is at most this far from the middle one
  double min_shift_ratio = 0.25;  // a trajectory's extent is uniform in [ratio, 1] x max_shift
  double max_rotation_deg = 0.5;  // farthest rotation from the middle frame; 0: translations only
  double inertia = 0.8;           // velocity smoothing of the random walk, in [0, 1)

  // Throws ConfigError naming the field for out-of-range values.
  void validate() const;
};

// A smooth random walk: velocity_t = inertia * velocity_{t-1} + (1 - inertia) *
// N(0, I), position = cumulative velocity; then shifted so the middle frame is
// at the origin and scaled so that its farthest frame lies exactly at an extent
// drawn uniformly from [min_shift_ratio, 1] x max_shift (likewise the angle,
// scaled to [0, max_rotation_deg]). Returns `frames` poses; pose[frames / 2] is
// the identity. A degenerate walk (all frames equal) stays at the origin.
std::vector<Pose> random_trajectory(const TrajectoryOptions& options, uint64_t seed);

// Largest displacement (pixels) a trajectory causes anywhere in a w x h image:
// translation plus the rotation's arc at the corners. Used to size margins.
double max_displacement(const std::vector<Pose>& trajectory, int width, int height);

struct BlurOptions {
  // Average in linear light (decode with gamma, average, encode), as GoPro.
  // false: plain average of the 8-bit values.
  bool linear_light = true;
  double gamma = 2.2;
};

// The affine matrix (2x3, CV_64F) of a pose for a w x h image: rotation about
// the centre ((w - 1) / 2, (h - 1) / 2), then translation by (dx, dy).
cv::Mat pose_matrix(const Pose& pose, int width, int height);

// One frame: `image` (CV_8U / CV_32F / CV_64F, 1 or 3 channels) warped by
// `pose` with cv::warpAffine (INTER_LINEAR, BORDER_REFLECT_101; OpenCV
// quantises sub-pixel positions to 1/32 pixel). The identity pose returns an
// exact copy.
cv::Mat render_frame(const cv::Mat& image, const Pose& pose);

// Renders and averages the frames of `trajectory` over `image` (uint8, 1 or 3
// channels): the image is decoded to float32 linear light ((u / 255)^gamma)
// when options.linear_light (else u / 255), each frame is warped in float32
// (so interpolation, too, happens in linear light), the frames are summed in
// float64 and divided by their count, encoded (x^(1 / gamma)), and rounded to
// uint8 (half up). A trajectory of identity poses returns `image` unchanged.
// Throws Error for an empty trajectory, an empty or non-uint8 image, or gamma <= 0.
cv::Mat blur_image(const cv::Mat& image, const std::vector<Pose>& trajectory,
                   const BlurOptions& options = {});

}  // namespace samdeblur::synth
