// Synthetic camera-shake blur: determinism, "a blur is a blur", exact identity.
#include "samdeblur/synth/blur.h"

#include <gtest/gtest.h>

#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "samdeblur/core/error.h"

using namespace samdeblur;
using namespace samdeblur::synth;

namespace {

// A textured test image: gradients, a checkerboard and a disc (edges in every direction).
cv::Mat test_image(int h, int w) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      m.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>((x * 3) % 256),
                                        static_cast<uint8_t>(((x / 8 + y / 8) % 2) * 180 + 30),
                                        static_cast<uint8_t>((y * 5) % 256));
  cv::circle(m, {w / 2, h / 2}, std::min(h, w) / 4, cv::Scalar(250, 20, 120), cv::FILLED);
  return m;
}

bool same_bytes(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

double mean_all(const cv::Mat& m) {
  const cv::Scalar s = cv::mean(m);
  return (s[0] + s[1] + s[2]) / 3.0;
}

double linear_mean(const cv::Mat& m) {
  cv::Mat f;
  m.convertTo(f, CV_64F, 1.0 / 255);
  cv::pow(f, 2.2, f);
  return mean_all(f);
}

}  // namespace

TEST(SynthRng, DeterministicAndInRange) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const uint64_t va = a.next_u64();
    EXPECT_EQ(va, b.next_u64());
    EXPECT_NE(va, c.next_u64());
  }
  // Known first value of splitmix64 seeded with 0 (reference implementation by S. Vigna).
  EXPECT_EQ(Rng(0).next_u64(), 0xe220a8397b1dcdafULL);
  Rng r(7);
  double sum = 0, sum2 = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    const int64_t k = r.uniform_int(-3, 3);
    ASSERT_GE(k, -3);
    ASSERT_LE(k, 3);
    const double z = r.normal();
    sum += z;
    sum2 += z * z;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.05);
  EXPECT_NEAR(sum2 / n, 1.0, 0.05);
  EXPECT_EQ(r.uniform_int(5, 5), 5);
  EXPECT_THROW(r.uniform_int(2, 1), Error);
  EXPECT_NE(mix_seed(0, 1), mix_seed(0, 2));
  EXPECT_NE(mix_seed(0, 1), mix_seed(1, 1));
  EXPECT_EQ(hash_name(""), 0xcbf29ce484222325ULL);   // FNV-1a 64 offset basis
  EXPECT_EQ(hash_name("a"), 0xaf63dc4c8601ec8cULL);  // published FNV-1a 64 test vector
}

TEST(SynthTrajectory, CentredScaledAndDeterministic) {
  TrajectoryOptions o;
  o.frames = 15;
  o.max_shift = 6;
  o.max_rotation_deg = 0.5;
  for (uint64_t seed : {0ULL, 1ULL, 12345ULL}) {
    const auto t = random_trajectory(o, seed);
    ASSERT_EQ(t.size(), 15u);
    EXPECT_EQ(t[7].dx, 0);
    EXPECT_EQ(t[7].dy, 0);
    EXPECT_EQ(t[7].angle_deg, 0);
    double far = 0, far_angle = 0;
    for (const auto& p : t) {
      far = std::max(far, std::hypot(p.dx, p.dy));
      far_angle = std::max(far_angle, std::abs(p.angle_deg));
    }
    EXPECT_LE(far, 6 + 1e-9);
    EXPECT_GE(far, 6 * o.min_shift_ratio - 1e-9);
    EXPECT_LE(far_angle, 0.5 + 1e-9);
    const auto again = random_trajectory(o, seed);
    for (size_t i = 0; i < t.size(); ++i) {
      EXPECT_EQ(t[i].dx, again[i].dx);
      EXPECT_EQ(t[i].dy, again[i].dy);
      EXPECT_EQ(t[i].angle_deg, again[i].angle_deg);
    }
    // Smooth: consecutive frames are much closer than the extent.
    for (size_t i = 1; i < t.size(); ++i)
      EXPECT_LT(std::hypot(t[i].dx - t[i - 1].dx, t[i].dy - t[i - 1].dy), far * 0.6);
  }
  // The rotation draw does not change the translations of a seed.
  TrajectoryOptions no_rot = o;
  no_rot.max_rotation_deg = 0;
  const auto a = random_trajectory(o, 9), b = random_trajectory(no_rot, 9);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].dx, b[i].dx);
    EXPECT_EQ(b[i].angle_deg, 0);
  }
  EXPECT_GT(max_displacement(a, 100, 100), max_displacement(b, 100, 100));
  // Invalid options name the field.
  TrajectoryOptions bad = o;
  bad.frames = 4;
  try {
    random_trajectory(bad, 0);
    FAIL() << "even frame count accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("trajectory.frames"), std::string::npos) << e.what();
  }
  bad = o;
  bad.inertia = 1.0;
  EXPECT_THROW(random_trajectory(bad, 0), ConfigError);
}

TEST(SynthBlur, ZeroMotionReturnsTheSharpImage) {
  const cv::Mat img = test_image(40, 56);
  for (bool linear : {true, false}) {
    BlurOptions b;
    b.linear_light = linear;
    EXPECT_TRUE(same_bytes(blur_image(img, std::vector<Pose>(15), b), img)) << linear;
    EXPECT_TRUE(same_bytes(blur_image(img, std::vector<Pose>(1), b), img)) << linear;
  }
  // max_shift 0 and no rotation: an all-identity trajectory.
  TrajectoryOptions o;
  o.max_shift = 0;
  o.max_rotation_deg = 0;
  EXPECT_TRUE(same_bytes(blur_image(img, random_trajectory(o, 3)), img));
  // Grayscale works as well.
  cv::Mat gray;
  cv::cvtColor(img, gray, cv::COLOR_BGR2GRAY);
  EXPECT_TRUE(same_bytes(blur_image(gray, std::vector<Pose>(3)), gray));
}

TEST(SynthBlur, IntegerShiftsAverageExactly) {
  // Plain averaging of the identity and a one-pixel shift is the mean of two
  // known images (away from the reflected first column), to within rounding.
  const cv::Mat img = test_image(20, 24);
  BlurOptions plain;
  plain.linear_light = false;
  const cv::Mat out = blur_image(img, {Pose{}, Pose{1, 0, 0}}, plain);
  for (int y = 0; y < img.rows; ++y)
    for (int x = 1; x < img.cols; ++x)
      for (int c = 0; c < 3; ++c) {
        const double want = (img.at<cv::Vec3b>(y, x)[c] + img.at<cv::Vec3b>(y, x - 1)[c]) / 2.0;
        ASSERT_LE(std::abs(out.at<cv::Vec3b>(y, x)[c] - want), 0.5) << y << "," << x << "," << c;
      }
  // render_frame moves content by +dx: the frame's pixel x shows the source's x - 1.
  const cv::Mat f = render_frame(img, Pose{1, 0, 0});
  EXPECT_EQ(f.at<cv::Vec3b>(5, 10), img.at<cv::Vec3b>(5, 9));
}

TEST(SynthBlur, BlurIsABlur) {
  const cv::Mat img = test_image(96, 96);
  TrajectoryOptions o;
  o.max_shift = 6;
  const auto t = random_trajectory(o, 5);
  for (bool linear : {true, false}) {
    BlurOptions b;
    b.linear_light = linear;
    const cv::Mat out = blur_image(img, t, b);
    ASSERT_EQ(out.size(), img.size());
    ASSERT_EQ(out.type(), CV_8UC3);
    // Differs from the sharp image, and is smoother (less gradient energy).
    EXPECT_GT(cv::norm(out, img, cv::NORM_L1) / (img.total() * 3), 2.0) << linear;
    cv::Mat gi, go;
    cv::Laplacian(img, gi, CV_64F);
    cv::Laplacian(out, go, CV_64F);
    EXPECT_LT(cv::norm(go), 0.8 * cv::norm(gi)) << linear;
    // Mean preserved (up to border reflection and rounding) in the space the
    // frames are averaged in: 8-bit values for the plain average, linear light
    // ((u / 255)^2.2) otherwise. (In 8-bit values a linear-light blur is
    // brighter: the gamma curve is concave.)
    if (linear) {
      EXPECT_NEAR(linear_mean(out), linear_mean(img), 0.005);
    } else {
      EXPECT_NEAR(mean_all(out), mean_all(img), 0.5);
    }
    // Deterministic: the same trajectory gives the same bytes.
    EXPECT_TRUE(same_bytes(out, blur_image(img, t, b)));
  }
  // Linear-light and plain averaging differ.
  BlurOptions plain;
  plain.linear_light = false;
  EXPECT_FALSE(same_bytes(blur_image(img, t), blur_image(img, t, plain)));
  // Input is not modified.
  const cv::Mat copy = img.clone();
  blur_image(img, t);
  EXPECT_TRUE(same_bytes(img, copy));
}

TEST(SynthBlur, RejectsBadInput) {
  const cv::Mat img = test_image(8, 8);
  EXPECT_THROW(blur_image(img, {}), Error);
  EXPECT_THROW(blur_image(cv::Mat(), std::vector<Pose>(1)), Error);
  cv::Mat f;
  img.convertTo(f, CV_32F);
  EXPECT_THROW(blur_image(f, std::vector<Pose>(1)), Error);
  BlurOptions b;
  b.gamma = 0;
  EXPECT_THROW(blur_image(img, std::vector<Pose>(1), b), Error);
}
