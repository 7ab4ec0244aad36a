// The convolutional front-end's ops (kernels.h): the "same" 2-D convolution over packed
// sequences against a direct sum in double (torch's Conv2d definition, each sequence an image
// zero-padded at its own edges), its backward against the direct sums and finite differences,
// and BatchNorm against its definition (torch's BatchNorm2d) and finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "kernels/kernels.h"

namespace tlm {
namespace {

namespace k = kernels;
using gradcheck::dot, gradcheck::expect_gradient, gradcheck::random_vec;

struct ConvCase {
  std::string name;
  std::vector<int32_t> lengths;
  int width, in_ch, out_ch, kh, kw;
};

// Several sequences (one shorter than the kernel), odd and even kernels (torch pads an even one
// more after), a pointwise projection, and a shape wide enough to take several unfolded blocks.
std::vector<ConvCase> conv_cases() {
  return {{"k3_one_channel", {5, 1, 7}, 6, 1, 3, 3, 3},
          {"k4x3_even", {6, 2, 4}, 5, 2, 4, 4, 3},
          {"k16x3_paper_shape", {9, 20}, 4, 1, 2, 16, 3},
          {"pointwise", {3, 4}, 5, 4, 1, 1, 1},
          {"several_blocks", {5, 7}, 700, 64, 2, 3, 3}};
}

std::vector<int32_t> offsets_of(const std::vector<int32_t>& lengths) {
  std::vector<int32_t> off(lengths.size() + 1, 0);
  std::partial_sum(lengths.begin(), lengths.end(), off.begin() + 1);
  return off;
}

// Calls fn(out_row, out_col, in_row, in_col, a, b) for every tap that reads inside its sequence.
template <typename F>
void for_each_tap(const ConvCase& c, const std::vector<int32_t>& off, F&& fn) {
  const int ph = (c.kh - 1) / 2, pw = (c.kw - 1) / 2;
  for (size_t s = 0; s + 1 < off.size(); ++s) {
    for (int r = off[s]; r < off[s + 1]; ++r) {
      for (int w = 0; w < c.width; ++w) {
        for (int a = 0; a < c.kh; ++a) {
          const int sr = r + a - ph;
          if (sr < off[s] || sr >= off[s + 1]) continue;
          for (int b = 0; b < c.kw; ++b) {
            const int sc = w + b - pw;
            if (sc >= 0 && sc < c.width) fn(r, w, sr, sc, a, b);
          }
        }
      }
    }
  }
}

struct ConvBuffers {
  std::vector<int32_t> off;
  std::vector<float> x, w, b;
  k::ConvShape shape;
  int n;
  explicit ConvBuffers(const ConvCase& c, uint64_t seed) : off(offsets_of(c.lengths)) {
    n = off.back();
    x = random_vec(int64_t{n} * c.width * c.in_ch, seed);
    w = random_vec(int64_t{c.out_ch} * c.in_ch * c.kh * c.kw, seed + 1, 0.3);
    b = random_vec(c.out_ch, seed + 2);
    shape = {off.data(), static_cast<int>(c.lengths.size()), c.width, c.in_ch, c.out_ch, c.kh, c.kw};
  }
  int64_t wi(const ConvCase& c, int o, int ci, int a, int bb) const {
    return ((int64_t{o} * c.in_ch + ci) * c.kh + a) * c.kw + bb;
  }
  int64_t xi(const ConvCase& c, int r, int col, int ci) const { return (int64_t{r} * c.width + col) * c.in_ch + ci; }
  int64_t yi(const ConvCase& c, int r, int col, int o) const { return (int64_t{r} * c.width + col) * c.out_ch + o; }
};

TEST(ConvOps, ForwardEqualsTheDirectSumPerSequence) {
  for (const ConvCase& c : conv_cases()) {
    ConvBuffers t(c, 1);
    std::vector<double> ref(int64_t{t.n} * c.width * c.out_ch);
    for (int r = 0; r < t.n; ++r)
      for (int w = 0; w < c.width; ++w)
        for (int o = 0; o < c.out_ch; ++o) ref[t.yi(c, r, w, o)] = t.b[o];
    for_each_tap(c, t.off, [&](int r, int w, int sr, int sc, int a, int b) {
      for (int o = 0; o < c.out_ch; ++o)
        for (int ci = 0; ci < c.in_ch; ++ci)
          ref[t.yi(c, r, w, o)] += double{t.w[t.wi(c, o, ci, a, b)]} * t.x[t.xi(c, sr, sc, ci)];
    });
    std::vector<float> y(ref.size(), 7.0f), scratch(k::conv2d_scratch_size(t.shape));
    k::conv2d_forward(t.x.data(), t.w.data(), t.b.data(), y.data(), scratch.data(), t.shape);
    double max_err = 0, max_ref = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      max_err = std::max(max_err, std::fabs(y[i] - ref[i]));
      max_ref = std::max(max_ref, std::fabs(ref[i]));
    }
    // fp32 sums of up to in_ch * kh * kw = 576 products: ~1e-6 relative to the largest output
    EXPECT_LE(max_err, 1e-5 * max_ref) << c.name;
  }
}

TEST(ConvOps, BackwardEqualsTheDirectSums) {
  for (const ConvCase& c : conv_cases()) {
    ConvBuffers t(c, 11);
    const std::vector<float> dy = random_vec(int64_t{t.n} * c.width * c.out_ch, 14);
    std::vector<double> dx_ref(t.x.size(), 0.0), dw_ref(t.w.size(), 0.5), db_ref(t.b.size(), -0.25);
    for (int r = 0; r < t.n; ++r)
      for (int w = 0; w < c.width; ++w)
        for (int o = 0; o < c.out_ch; ++o) db_ref[o] += dy[t.yi(c, r, w, o)];
    for_each_tap(c, t.off, [&](int r, int w, int sr, int sc, int a, int b) {
      for (int o = 0; o < c.out_ch; ++o) {
        const double g = dy[t.yi(c, r, w, o)];
        for (int ci = 0; ci < c.in_ch; ++ci) {
          dx_ref[t.xi(c, sr, sc, ci)] += g * t.w[t.wi(c, o, ci, a, b)];
          dw_ref[t.wi(c, o, ci, a, b)] += g * t.x[t.xi(c, sr, sc, ci)];
        }
      }
    });
    // dw and db accumulate onto what is there; dx is overwritten
    std::vector<float> dx(t.x.size(), 3.0f), dw(t.w.size(), 0.5f), db(t.b.size(), -0.25f);
    std::vector<float> scratch(k::conv2d_scratch_size(t.shape));
    k::conv2d_backward(dy.data(), t.x.data(), t.w.data(), dx.data(), dw.data(), db.data(), scratch.data(), t.shape);
    auto check = [&](const char* what, const std::vector<float>& got, const std::vector<double>& ref) {
      double max_err = 0, max_ref = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        max_err = std::max(max_err, std::fabs(got[i] - ref[i]));
        max_ref = std::max(max_ref, std::fabs(ref[i]));
      }
      EXPECT_LE(max_err, 1e-5 * max_ref) << c.name << " " << what;
    };
    check("dx", dx, dx_ref);
    check("dw", dw, dw_ref);
    check("db", db, db_ref);
  }
}

TEST(GradCheck, Conv2dSamePadding) {
  for (const ConvCase& c : {ConvCase{"even", {3, 1, 5}, 5, 2, 3, 4, 3}, ConvCase{"odd", {4, 6}, 4, 3, 2, 3, 5}}) {
    ConvBuffers t(c, 21);
    const std::vector<float> r = random_vec(int64_t{t.n} * c.width * c.out_ch, 24);
    std::vector<float> y(r.size()), scratch(k::conv2d_scratch_size(t.shape));
    auto loss = [&] {
      k::conv2d_forward(t.x.data(), t.w.data(), t.b.data(), y.data(), scratch.data(), t.shape);
      return dot(y, r);
    };
    std::vector<float> dx(t.x.size()), dw(t.w.size(), 0.0f), db(t.b.size(), 0.0f);
    k::conv2d_backward(r.data(), t.x.data(), t.w.data(), dx.data(), dw.data(), db.data(), scratch.data(), t.shape);
    expect_gradient(("conv dx " + c.name).c_str(), loss, t.x, dx);
    expect_gradient(("conv dw " + c.name).c_str(), loss, t.w, dw);
    expect_gradient(("conv db " + c.name).c_str(), loss, t.b, db);
  }
}

TEST(ConvOps, BatchNormTrainAndEvalFollowTorchsDefinition) {
  const int64_t pixels = 37;
  const int ch = 3;
  const float eps = 1e-5f, momentum = 0.1f;
  std::vector<float> x = random_vec(pixels * ch, 31, 2.0), gamma = random_vec(ch, 32), beta = random_vec(ch, 33);
  for (int64_t p = 0; p < pixels; ++p) x[p * ch + 1] += 100.0f;  // a large mean: the variance must not cancel
  std::vector<float> y(x.size()), mean(ch), rstd(ch), rmean{0.5f, -1.0f, 2.0f}, rvar{1.0f, 2.0f, 0.5f};
  const std::vector<float> rmean0 = rmean, rvar0 = rvar;
  k::batchnorm_forward_train(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(), rmean.data(),
                             rvar.data(), pixels, ch, eps, momentum);
  for (int c = 0; c < ch; ++c) {
    double mu = 0, var = 0;
    for (int64_t p = 0; p < pixels; ++p) mu += x[p * ch + c];
    mu /= pixels;
    for (int64_t p = 0; p < pixels; ++p) var += (x[p * ch + c] - mu) * (x[p * ch + c] - mu);
    const double biased = var / pixels, unbiased = var / (pixels - 1), inv = 1.0 / std::sqrt(biased + eps);
    EXPECT_NEAR(mean[c], mu, 1e-6 * std::fabs(mu) + 1e-7) << c;
    EXPECT_NEAR(rstd[c], inv, 1e-6 * inv) << c;
    EXPECT_NEAR(rmean[c], (1 - momentum) * rmean0[c] + momentum * mu, 1e-5) << c;
    EXPECT_NEAR(rvar[c], (1 - momentum) * rvar0[c] + momentum * unbiased, 1e-5) << c;
    for (int64_t p = 0; p < pixels; ++p) {
      EXPECT_NEAR(y[p * ch + c], (x[p * ch + c] - mu) * inv * gamma[c] + beta[c], 2e-5) << c << " " << p;
    }
  }
  std::vector<float> ye(x.size());
  k::batchnorm_forward_eval(x.data(), gamma.data(), beta.data(), rmean.data(), rvar.data(), ye.data(), pixels, ch, eps);
  for (int c = 0; c < ch; ++c) {
    const double inv = 1.0 / std::sqrt(double{rvar[c]} + eps);
    for (int64_t p = 0; p < pixels; ++p) {
      const double want = (x[p * ch + c] - double{rmean[c]}) * inv * gamma[c] + beta[c];
      EXPECT_NEAR(ye[p * ch + c], want, 1e-4 * std::max(1.0, std::fabs(want))) << c << " " << p;
    }
  }
}

TEST(GradCheck, BatchNormTraining) {
  const int64_t pixels = 23;
  const int ch = 3;
  std::vector<float> x = random_vec(pixels * ch, 41), gamma = random_vec(ch, 42), beta = random_vec(ch, 43);
  const std::vector<float> r = random_vec(pixels * ch, 44);
  std::vector<float> y(x.size()), mean(ch), rstd(ch);
  auto forward = [&] {
    std::vector<float> rm(ch, 0.0f), rv(ch, 1.0f);  // the running statistics do not enter the loss
    k::batchnorm_forward_train(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(), rm.data(),
                               rv.data(), pixels, ch, 1e-5f, 0.1f);
  };
  auto loss = [&] {
    forward();
    return dot(y, r);
  };
  forward();
  std::vector<float> dx(x.size()), dgamma(ch, 0.0f), dbeta(ch, 0.0f);
  k::batchnorm_backward(r.data(), x.data(), mean.data(), rstd.data(), gamma.data(), dx.data(), dgamma.data(),
                        dbeta.data(), pixels, ch);
  expect_gradient("batchnorm dx", loss, x, dx);
  expect_gradient("batchnorm dgamma", loss, gamma, dgamma);
  expect_gradient("batchnorm dbeta", loss, beta, dbeta);
}

}  // namespace
}  // namespace tlm
