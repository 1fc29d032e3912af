#include "samdeblur/synth/blur.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "samdeblur/core/error.h"

namespace samdeblur::synth {

namespace {
constexpr double kPi = 3.14159265358979323846;

uint64_t splitmix_finalise(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

bool is_identity(const Pose& p) { return p.dx == 0 && p.dy == 0 && p.angle_deg == 0; }
}  // namespace

uint64_t Rng::next_u64() {
  state_ += 0x9e3779b97f4a7c15ULL;
  return splitmix_finalise(state_);
}

double Rng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

int64_t Rng::uniform_int(int64_t lo, int64_t hi) {
  if (lo > hi) throw Error(fmt::format("Rng::uniform_int: empty range [{}, {}]", lo, hi));
  const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
  if (span == 0) return static_cast<int64_t>(next_u64());  // the whole 64-bit range
  // Rejection sampling: no modulo bias.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % span;
  uint64_t v;
  do v = next_u64();
  while (v >= limit);
  return lo + static_cast<int64_t>(v % span);
}

double Rng::normal() {
  // Box-Muller; u1 in (0, 1] so the log is finite. One value per call (no cache),
  // which keeps the generator's state a single integer.
  const double u1 = 1.0 - uniform(), u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

uint64_t mix_seed(uint64_t seed, uint64_t value) {
  return splitmix_finalise(seed + 0x9e3779b97f4a7c15ULL * (value + 1) + splitmix_finalise(value));
}

uint64_t hash_name(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

void TrajectoryOptions::validate() const {
  if (frames < 1 || frames % 2 == 0)
    throw ConfigError(
        fmt::format("trajectory.frames: must be odd and >= 1 (the sharp target is "
                    "the middle frame), got {}",
                    frames));
  if (!(max_shift >= 0) || !std::isfinite(max_shift))
    throw ConfigError(fmt::format("trajectory.max_shift: must be >= 0, got {}", max_shift));
  if (!(min_shift_ratio >= 0 && min_shift_ratio <= 1))
    throw ConfigError(
        fmt::format("trajectory.min_shift_ratio: must be in [0, 1], got {}", min_shift_ratio));
  if (!(max_rotation_deg >= 0 && max_rotation_deg <= 45))
    throw ConfigError(
        fmt::format("trajectory.max_rotation_deg: must be in [0, 45], got {}", max_rotation_deg));
  if (!(inertia >= 0 && inertia < 1))
    throw ConfigError(fmt::format("trajectory.inertia: must be in [0, 1), got {}", inertia));
}

std::vector<Pose> random_trajectory(const TrajectoryOptions& options, uint64_t seed) {
  options.validate();
  Rng rng(seed);
  const int n = options.frames, mid = n / 2;
  // The draws happen in a fixed order whatever the options, so changing e.g.
  // max_rotation_deg does not change the translations of a seed.
  const double extent = options.max_shift * rng.uniform(options.min_shift_ratio, 1.0);
  const double angle_extent = options.max_rotation_deg * rng.uniform();
  std::vector<Pose> poses(n);
  double vx = rng.normal(), vy = rng.normal(), va = rng.normal();
  double x = 0, y = 0, a = 0;
  for (int i = 0; i < n; ++i) {
    if (i > 0) {
      const double nx = rng.normal(), ny = rng.normal(), na = rng.normal();
      vx = options.inertia * vx + (1 - options.inertia) * nx;
      vy = options.inertia * vy + (1 - options.inertia) * ny;
      va = options.inertia * va + (1 - options.inertia) * na;
      x += vx;
      y += vy;
      a += va;
    }
    poses[i] = {x, y, a};
  }
  const Pose centre = poses[mid];
  double far = 0, far_angle = 0;
  for (auto& p : poses) {
    p.dx -= centre.dx;
    p.dy -= centre.dy;
    p.angle_deg -= centre.angle_deg;
    far = std::max(far, std::hypot(p.dx, p.dy));
    far_angle = std::max(far_angle, std::abs(p.angle_deg));
  }
  const double s = far > 0 ? extent / far : 0, sa = far_angle > 0 ? angle_extent / far_angle : 0;
  for (auto& p : poses) {
    p.dx *= s;
    p.dy *= s;
    p.angle_deg *= sa;
  }
  poses[mid] = Pose{};  // exactly the identity (it is 0 * s already; this makes it explicit)
  return poses;
}

double max_displacement(const std::vector<Pose>& trajectory, int width, int height) {
  // A corner is at most r = half the diagonal from the centre; rotating by a
  // moves it by 2 r sin(a / 2) <= r |a|.
  const double r = 0.5 * std::hypot(width, height);
  double m = 0;
  for (const auto& p : trajectory)
    m = std::max(m, std::hypot(p.dx, p.dy) + r * std::abs(p.angle_deg) * kPi / 180.0);
  return m;
}

cv::Mat pose_matrix(const Pose& pose, int width, int height) {
  const cv::Point2f centre(0.5f * (width - 1), 0.5f * (height - 1));
  cv::Mat m = cv::getRotationMatrix2D(centre, pose.angle_deg, 1.0);  // CV_64F 2x3
  m.at<double>(0, 2) += pose.dx;
  m.at<double>(1, 2) += pose.dy;
  return m;
}

cv::Mat render_frame(const cv::Mat& image, const Pose& pose) {
  if (image.empty()) throw Error("render_frame: empty image");
  if (is_identity(pose)) return image.clone();
  cv::Mat out;
  cv::warpAffine(image, out, pose_matrix(pose, image.cols, image.rows), image.size(),
                 cv::INTER_LINEAR, cv::BORDER_REFLECT_101);
  return out;
}

cv::Mat blur_image(const cv::Mat& image, const std::vector<Pose>& trajectory,
                   const BlurOptions& options) {
  if (image.empty() || image.depth() != CV_8U || (image.channels() != 1 && image.channels() != 3))
    throw Error(
        fmt::format("blur_image: expected a non-empty uint8 image with 1 or 3 channels, "
                    "got {}x{} depth {} channels {}",
                    image.cols, image.rows, image.depth(), image.channels()));
  if (trajectory.empty()) throw Error("blur_image: empty trajectory");
  if (!(options.gamma > 0) || !std::isfinite(options.gamma))
    throw Error(fmt::format("blur_image: gamma must be > 0, got {}", options.gamma));
  const double gamma = options.linear_light ? options.gamma : 1.0;

  // Decode through a lookup table: (u / 255)^gamma in float32.
  cv::Mat lut(1, 256, CV_32F);
  for (int u = 0; u < 256; ++u) lut.at<float>(u) = static_cast<float>(std::pow(u / 255.0, gamma));
  const int type32 = CV_MAKETYPE(CV_32F, image.channels());
  const int type64 = CV_MAKETYPE(CV_64F, image.channels());
  const cv::Mat src = image.isContinuous() ? image : image.clone();
  cv::Mat linear(image.size(), type32);  // freshly allocated: continuous
  {
    const auto* in = src.ptr<uint8_t>();
    const auto* table = lut.ptr<float>();
    auto* dst = linear.ptr<float>();
    for (size_t i = 0, n = src.total() * src.channels(); i < n; ++i) dst[i] = table[in[i]];
  }

  cv::Mat sum = cv::Mat::zeros(image.size(), type64);
  for (const auto& pose : trajectory) {
    const cv::Mat frame = render_frame(linear, pose);
    cv::add(sum, frame, sum, cv::noArray(), CV_64F);
  }
  sum /= static_cast<double>(trajectory.size());

  cv::Mat out(image.size(), image.type());
  const double inv_gamma = 1.0 / gamma;
  for (int r = 0; r < sum.rows; ++r) {
    const auto* s = sum.ptr<double>(r);
    auto* d = out.ptr<uint8_t>(r);
    for (int i = 0, n = sum.cols * sum.channels(); i < n; ++i) {
      const double v = std::clamp(s[i], 0.0, 1.0);
      d[i] = static_cast<uint8_t>(std::floor(255.0 * std::pow(v, inv_gamma) + 0.5));
    }
  }
  return out;
}

}  // namespace samdeblur::synth
