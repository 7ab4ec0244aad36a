// A small builder over ONNX's own protobuf schema (onnx::GraphProto): nodes with generated output
// names, fp32 initializers, int64 constants. Only what the BERT exporter needs; every value is
// named by the builder, so two subgraphs (committee members) never collide.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace tlm {

// A node attribute: an int, a float or a list of ints (ONNX's INT, FLOAT, INTS).
struct OnnxAttr {
  std::string name;
  std::variant<int64_t, float, std::vector<int64_t>> value;
};

class OnnxGraph {
 public:
  explicit OnnxGraph(onnx::GraphProto* graph) : graph_(graph) {}

  // Adds a node of `op_type` on `inputs` and returns the name of its (single) output.
  std::string op(const std::string& op_type, const std::vector<std::string>& inputs,
                 const std::vector<OnnxAttr>& attrs = {});
  // An fp32 initializer of `shape` from `data` (row-major, prod(shape) floats); returns its name.
  std::string weight(const std::string& name, const std::vector<int64_t>& shape, const float* data);
  // The (rows, cols) matrix `data` transposed to (cols, rows): a torch Linear weight (out, in)
  // as the right operand of MatMul (in, out).
  std::string weight_transposed(const std::string& name, int64_t rows, int64_t cols, const float* data);
  // Constants: an int64 vector, a scalar int64 (shape []), a scalar float (shape []).
  std::string ints(const std::vector<int64_t>& values);
  std::string int_scalar(int64_t value);
  std::string float_scalar(float value);

  // Graph inputs and outputs: a tensor of `elem_type` with dimensions given as names (dynamic,
  // e.g. "batch") or sizes.
  using Dim = std::variant<std::string, int64_t>;
  void input(const std::string& name, int elem_type, const std::vector<Dim>& dims);
  void output(const std::string& name, int elem_type, const std::vector<Dim>& dims);
  // Renames the output of the node that produced `value` to `name` (a graph output's name).
  void rename_output(const std::string& value, const std::string& name);

 private:
  std::string fresh(const std::string& stem);
  std::string int64_constant(const std::vector<int64_t>& values, bool scalar);
  onnx::GraphProto* graph_;
  int64_t counter_ = 0;
};

}  // namespace tlm
