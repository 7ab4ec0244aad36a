#include "eval/onnx_graph.h"

#include <cstring>

#include "tlm/check.h"

namespace tlm {

namespace {

void set_dims(onnx::ValueInfoProto* info, int elem_type, const std::vector<OnnxGraph::Dim>& dims) {
  auto* tensor = info->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(elem_type);
  auto* shape = tensor->mutable_shape();
  for (const auto& d : dims) {
    auto* dim = shape->add_dim();
    if (const auto* name = std::get_if<std::string>(&d)) {
      dim->set_dim_param(*name);
    } else {
      dim->set_dim_value(std::get<int64_t>(d));
    }
  }
}

}  // namespace

std::string OnnxGraph::fresh(const std::string& stem) { return stem + "_" + std::to_string(counter_++); }

std::string OnnxGraph::op(const std::string& op_type, const std::vector<std::string>& inputs,
                          const std::vector<OnnxAttr>& attrs) {
  onnx::NodeProto* node = graph_->add_node();
  node->set_op_type(op_type);
  const std::string out = fresh(op_type);
  node->set_name(out);
  for (const auto& in : inputs) node->add_input(in);
  node->add_output(out);
  for (const auto& a : attrs) {
    onnx::AttributeProto* attr = node->add_attribute();
    attr->set_name(a.name);
    if (const auto* i = std::get_if<int64_t>(&a.value)) {
      attr->set_type(onnx::AttributeProto::INT);
      attr->set_i(*i);
    } else if (const auto* f = std::get_if<float>(&a.value)) {
      attr->set_type(onnx::AttributeProto::FLOAT);
      attr->set_f(*f);
    } else {
      attr->set_type(onnx::AttributeProto::INTS);
      for (int64_t v : std::get<std::vector<int64_t>>(a.value)) attr->add_ints(v);
    }
  }
  return out;
}

std::string OnnxGraph::weight(const std::string& name, const std::vector<int64_t>& shape, const float* data) {
  onnx::TensorProto* t = graph_->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  int64_t count = 1;
  for (int64_t d : shape) {
    t->add_dims(d);
    count *= d;
  }
  // raw_data is little-endian IEEE floats, as this machine stores them
  t->set_raw_data(std::string(reinterpret_cast<const char*>(data), static_cast<size_t>(count) * sizeof(float)));
  return name;
}

std::string OnnxGraph::weight_transposed(const std::string& name, int64_t rows, int64_t cols, const float* data) {
  std::vector<float> t(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = data[r * cols + c];
  }
  return weight(name, {cols, rows}, t.data());
}

std::string OnnxGraph::int64_constant(const std::vector<int64_t>& values, bool scalar) {
  onnx::TensorProto* t = graph_->add_initializer();
  const std::string name = fresh(scalar ? "int" : "ints");
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  if (!scalar) t->add_dims(static_cast<int64_t>(values.size()));  // no dims: a scalar
  for (int64_t v : values) t->add_int64_data(v);
  return name;
}

std::string OnnxGraph::ints(const std::vector<int64_t>& values) { return int64_constant(values, false); }

std::string OnnxGraph::int_scalar(int64_t value) { return int64_constant({value}, true); }

std::string OnnxGraph::float_scalar(float value) {
  onnx::TensorProto* t = graph_->add_initializer();
  const std::string name = fresh("float");
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_float_data(value);
  return name;
}

void OnnxGraph::input(const std::string& name, int elem_type, const std::vector<Dim>& dims) {
  onnx::ValueInfoProto* info = graph_->add_input();
  info->set_name(name);
  set_dims(info, elem_type, dims);
}

void OnnxGraph::output(const std::string& name, int elem_type, const std::vector<Dim>& dims) {
  onnx::ValueInfoProto* info = graph_->add_output();
  info->set_name(name);
  set_dims(info, elem_type, dims);
}

void OnnxGraph::rename_output(const std::string& value, const std::string& name) {
  for (auto& node : *graph_->mutable_node()) {
    for (auto& out : *node.mutable_output()) {
      if (out == value) {
        out = name;
        return;
      }
    }
  }
  TLM_FAIL("no node produces {}", value);
}

}  // namespace tlm
