#include <algorithm>
#include <set>

#include "dcpp/dtensor.h"
#include "dcpp/error.h"

namespace dcpp {

struct DeviceMesh::Impl {
  CommPtr comm;
  Device device = Device::kCpu;
  Shape shape;
  std::vector<std::string> dim_names;
  std::vector<int64_t> coordinate;
  std::vector<CommPtr> dim_comms;
};

DeviceMesh::DeviceMesh(CommPtr comm, Device device, const Shape& shape, std::vector<std::string> dim_names) {
  if (!comm) throw Error(ErrorCode::kInvalidArgument, "DeviceMesh needs a communicator");
  if (shape.empty()) throw Error(ErrorCode::kInvalidArgument, "DeviceMesh needs at least one dimension");
  for (int64_t s : shape)
    if (s <= 0)
      throw Error(ErrorCode::kInvalidArgument, "DeviceMesh shape " + shape_to_string(shape) +
                                                   " has a non-positive dimension");
  if (shape_numel(shape) != comm->size())
    throw Error(ErrorCode::kInvalidArgument, "DeviceMesh shape " + shape_to_string(shape) + " holds " +
                                                 std::to_string(shape_numel(shape)) + " ranks but the communicator has " +
                                                 std::to_string(comm->size()));
  if (!dim_names.empty()) {
    if (dim_names.size() != shape.size())
      throw Error(ErrorCode::kInvalidArgument, "DeviceMesh has " + std::to_string(shape.size()) +
                                                   " dims but " + std::to_string(dim_names.size()) + " dim names");
    std::set<std::string> seen;
    for (const auto& n : dim_names)
      if (!seen.insert(n).second)
        throw Error(ErrorCode::kInvalidArgument, "DeviceMesh dim name '" + n + "' is used twice");
  }
  auto impl = std::make_shared<Impl>();
  impl->comm = comm;
  impl->device = device;
  impl->shape = shape;
  impl->dim_names = std::move(dim_names);
  // Row-major: the last mesh dim varies fastest.
  impl->coordinate.assign(shape.size(), 0);
  int64_t rest = comm->rank();
  for (size_t d = shape.size(); d-- > 0;) {
    impl->coordinate[d] = rest % shape[d];
    rest /= shape[d];
  }
  // One communicator per mesh dim: the ranks that differ only in that
  // coordinate. The colour is this rank's linear index with that coordinate
  // zeroed, so every line of the grid gets a distinct colour.
  for (size_t d = 0; d < shape.size(); ++d) {
    int64_t color = 0;
    for (size_t k = 0; k < shape.size(); ++k) color = color * shape[k] + (k == d ? 0 : impl->coordinate[k]);
    impl->dim_comms.push_back(comm->split(static_cast<int>(color), static_cast<int>(impl->coordinate[d])));
  }
  impl_ = std::move(impl);
}

// A template so the private Impl type need not be named here.
template <typename P>
static const auto& checked(const P& impl) {
  if (!impl) throw Error(ErrorCode::kInvalidArgument, "DeviceMesh is undefined");
  return *impl;
}

Device DeviceMesh::device_type() const { return checked(impl_).device; }
int DeviceMesh::ndim() const { return static_cast<int>(checked(impl_).shape.size()); }
const Shape& DeviceMesh::shape() const { return checked(impl_).shape; }
int64_t DeviceMesh::size() const { return shape_numel(checked(impl_).shape); }

int64_t DeviceMesh::size(int dim) const {
  const auto& s = checked(impl_).shape;
  if (dim < 0) dim += static_cast<int>(s.size());
  if (dim < 0 || dim >= static_cast<int>(s.size()))
    throw Error(ErrorCode::kInvalidArgument, "mesh dim " + std::to_string(dim) + " out of range for mesh " +
                                                 shape_to_string(s));
  return s[dim];
}

const std::vector<std::string>& DeviceMesh::dim_names() const { return checked(impl_).dim_names; }

int DeviceMesh::dim_index(const std::string& name) const {
  const auto& names = checked(impl_).dim_names;
  auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) throw Error(ErrorCode::kNotFound, "DeviceMesh has no dim named '" + name + "'");
  return static_cast<int>(it - names.begin());
}

const std::vector<int64_t>& DeviceMesh::coordinate() const { return checked(impl_).coordinate; }
int DeviceMesh::rank() const { return checked(impl_).comm->rank(); }
const CommPtr& DeviceMesh::comm() const { return checked(impl_).comm; }

const CommPtr& DeviceMesh::dim_comm(int dim) const {
  const auto& impl = checked(impl_);
  if (dim < 0) dim += static_cast<int>(impl.shape.size());
  if (dim < 0 || dim >= static_cast<int>(impl.shape.size()))
    throw Error(ErrorCode::kInvalidArgument, "mesh dim " + std::to_string(dim) + " out of range for mesh " +
                                                 shape_to_string(impl.shape));
  return impl.dim_comms[dim];
}

bool DeviceMesh::operator==(const DeviceMesh& other) const {
  if (impl_ == other.impl_) return true;
  if (!impl_ || !other.impl_) return false;
  return impl_->comm == other.impl_->comm && impl_->shape == other.impl_->shape &&
         impl_->dim_names == other.impl_->dim_names;
}

DeviceMesh init_device_mesh(CommPtr comm, const std::string& device_type, const Shape& mesh_shape,
                            std::vector<std::string> dim_names) {
  return DeviceMesh(std::move(comm), device_from_name(device_type), mesh_shape, std::move(dim_names));
}

}  // namespace dcpp
