// SPDX-License-Identifier: Apache-2.0
#include "controllers/plant_model.hpp"

#include <algorithm>
#include <cmath>

#include <Eigen/QR>

namespace orbit {

std::optional<double> PlantModel::time_constant() const {
  if (!(a > 0.0 && a < 1.0)) return std::nullopt;
  return -1.0 / std::log(a);
}

PlantFit fit_plant(Eigen::Ref<const Eigen::VectorXd> y, Eigen::Ref<const Eigen::VectorXd> u) {
  PlantFit fit;
  const Eigen::Index n = std::min(y.size(), u.size()) - 1;
  if (n < 3) return fit;
  Eigen::MatrixXd x(n, 3);
  x.col(0) = y.head(n);
  x.col(1) = u.head(n);
  x.col(2).setOnes();
  const Eigen::VectorXd target = y.segment(1, n);
  if (!x.allFinite() || !target.allFinite()) return fit;
  const auto qr = x.colPivHouseholderQr();
  if (qr.rank() < 3) return fit;  // u or y never moved: the model is not identifiable
  const Eigen::Vector3d theta = qr.solve(target);
  fit.model = {theta[0], theta[1], theta[2]};
  const Eigen::VectorXd residual = target - x * theta;
  fit.samples = static_cast<std::size_t>(n);
  fit.rmse = std::sqrt(residual.squaredNorm() / static_cast<double>(n));
  const double centered = (target.array() - target.mean()).matrix().squaredNorm();
  fit.r2 = centered > 0.0 ? 1.0 - residual.squaredNorm() / centered : 0.0;
  fit.valid = theta.allFinite();
  return fit;
}

}  // namespace orbit
