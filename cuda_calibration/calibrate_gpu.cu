// moesim_calibrate_gpu: measures the quantities moesim's cost model is fitted on and writes them
// as one JSON file (format in cuda_calibration/README.md). Depends on the CUDA toolkit alone
// (runtime, cuBLAS, cuBLASLt; NCCL when built with it), so the JSON is written by hand.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#ifdef MOESIM_HAVE_NCCL
#include <nccl.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#define CHECK_CUDA(call)                                                             \
  do {                                                                               \
    const cudaError_t status_ = (call);                                              \
    if (status_ != cudaSuccess) {                                                    \
      std::fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call, \
                   cudaGetErrorName(status_), cudaGetErrorString(status_));          \
      std::exit(1);                                                                  \
    }                                                                                \
  } while (0)

#define CHECK_CUBLAS(call)                                                      \
  do {                                                                          \
    const cublasStatus_t status_ = (call);                                      \
    if (status_ != CUBLAS_STATUS_SUCCESS) {                                     \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, \
                   cublasGetStatusString(status_));                             \
      std::exit(1);                                                             \
    }                                                                           \
  } while (0)

#define CHECK_LAST_KERNEL() CHECK_CUDA(cudaGetLastError())

#ifdef MOESIM_HAVE_NCCL
#define CHECK_NCCL(call)                                                        \
  do {                                                                          \
    const ncclResult_t status_ = (call);                                        \
    if (status_ != ncclSuccess) {                                               \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, \
                   ncclGetErrorString(status_));                                \
      std::exit(1);                                                             \
    }                                                                           \
  } while (0)
#endif

namespace {

using bf16 = __nv_bfloat16;
using fp8 = __nv_fp8_e4m3;

// ---------------------------------------------------------------------------------------------
// Options, output

struct Options {
  bool quick = false;
  std::string output = "measurements.json";
};

// Builds one JSON object as text; numbers keep 9 significant digits (timings are far noisier).
class JsonObject {
 public:
  JsonObject& add(const char* key, const std::string& value) { return raw(key, quoted(value)); }
  static std::string quoted(const std::string& value) {
    std::string escaped;
    for (char c : value) {
      if (c == '"' || c == '\\') {
        escaped += '\\';
        escaped += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char buffer[8];
        std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
        escaped += buffer;
      } else {
        escaped += c;
      }
    }
    return "\"" + escaped + "\"";
  }
  JsonObject& add(const char* key, const char* value) { return add(key, std::string(value)); }
  JsonObject& add(const char* key, double value) { return raw(key, number(value)); }
  JsonObject& add(const char* key, int value) { return raw(key, std::to_string(value)); }
  JsonObject& add(const char* key, const std::vector<int>& values) {
    std::string text = "[";
    for (size_t i = 0; i < values.size(); ++i)
      text += (i ? "," : "") + std::to_string(values[i]);
    return raw(key, text + "]");
  }
  JsonObject& raw(const char* key, const std::string& json) {
    text_ += (text_.empty() ? "" : ", ") + std::string("\"") + key + "\": " + json;
    return *this;
  }
  std::string str() const { return "{" + text_ + "}"; }

  static std::string number(double value) {
    if (!std::isfinite(value)) {
      std::fprintf(stderr, "internal error: non-finite number in the output\n");
      std::exit(1);
    }
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.9g", value);
    return buffer;
  }

 private:
  std::string text_;
};

struct Stats {
  double median = 0, min = 0, max = 0;
  int repetitions = 0;
  int calls_per_repetition = 0;
};

JsonObject sample(const char* family, const std::string& label, const Stats& stats) {
  JsonObject object;
  object.add("family", family).add("label", label);
  object.add("median_seconds", stats.median).add("min_seconds", stats.min).add("max_seconds", stats.max);
  object.add("repetitions", stats.repetitions).add("calls_per_repetition", stats.calls_per_repetition);
  return object;
}

Stats summarise(std::vector<double> seconds, int calls_per_repetition) {
  std::sort(seconds.begin(), seconds.end());
  Stats stats;
  const size_t n = seconds.size();
  stats.median = n % 2 ? seconds[n / 2] : 0.5 * (seconds[n / 2 - 1] + seconds[n / 2]);
  stats.min = seconds.front();
  stats.max = seconds.back();
  stats.repetitions = static_cast<int>(n);
  stats.calls_per_repetition = calls_per_repetition;
  return stats;
}

// ---------------------------------------------------------------------------------------------
// Device buffers and random data

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (count_ > 0) CHECK_CUDA(cudaMalloc(&data_, count_ * sizeof(T)));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept : data_(other.data_), count_(other.count_) {
    other.data_ = nullptr;
    other.count_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
    return *this;
  }
  ~DeviceBuffer() {
    if (data_ != nullptr) cudaFree(data_);
  }
  T* get() const { return data_; }
  size_t count() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

__device__ inline uint32_t hash32(uint64_t index, uint32_t seed) {
  uint64_t z = index * 0x9E3779B97F4A7C15ULL + seed * 0xD1B54A32D192ED03ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return static_cast<uint32_t>(z ^ (z >> 31));
}

// Uniform in [-1, 1).
__device__ inline float hash_uniform(uint64_t index, uint32_t seed) {
  return static_cast<float>(hash32(index, seed) >> 8) * (2.0f / 16777216.0f) - 1.0f;
}

__global__ void fill_bf16(bf16* data, size_t count, uint32_t seed, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count;
       i += size_t(gridDim.x) * blockDim.x)
    data[i] = __float2bfloat16(scale * hash_uniform(i, seed));
}

__global__ void fill_fp8(fp8* data, size_t count, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count;
       i += size_t(gridDim.x) * blockDim.x)
    data[i] = fp8(hash_uniform(i, seed));
}

__global__ void fill_u32(uint32_t* data, size_t count, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count;
       i += size_t(gridDim.x) * blockDim.x)
    data[i] = hash32(i, seed) | 1u;  // never zero
}

constexpr int kFillBlocks = 4096;
constexpr int kThreads = 256;
uint32_t next_seed = 1;

void randomise(DeviceBuffer<bf16>& buffer, float scale = 1.0f) {
  fill_bf16<<<kFillBlocks, kThreads>>>(buffer.get(), buffer.count(), next_seed++, scale);
  CHECK_LAST_KERNEL();
}
void randomise(DeviceBuffer<fp8>& buffer) {
  fill_fp8<<<kFillBlocks, kThreads>>>(buffer.get(), buffer.count(), next_seed++);
  CHECK_LAST_KERNEL();
}
void randomise(DeviceBuffer<uint32_t>& buffer) {
  fill_u32<<<kFillBlocks, kThreads>>>(buffer.get(), buffer.count(), next_seed++);
  CHECK_LAST_KERNEL();
}

// ---------------------------------------------------------------------------------------------
// Timing

class EventPair {
 public:
  EventPair() {
    CHECK_CUDA(cudaEventCreate(&start_));
    CHECK_CUDA(cudaEventCreate(&stop_));
  }
  ~EventPair() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  void start(cudaStream_t stream) { CHECK_CUDA(cudaEventRecord(start_, stream)); }
  double stop_seconds(cudaStream_t stream) {
    CHECK_CUDA(cudaEventRecord(stop_, stream));
    CHECK_CUDA(cudaEventSynchronize(stop_));
    float milliseconds = 0;
    CHECK_CUDA(cudaEventElapsedTime(&milliseconds, start_, stop_));
    return milliseconds * 1e-3;
  }

 private:
  cudaEvent_t start_{}, stop_{};
};

struct Budget {
  int min_repetitions;
  int max_repetitions;
  double seconds_per_sample;  // time spent measuring one sample, warm-up excluded
  double min_batch_seconds;   // a repetition times back-to-back calls lasting at least this long
};

Budget budget_for(const Options& options) {
  if (options.quick) return {3, 5, 2e-3, 20e-6};
  return {5, 50, 40e-3, 100e-6};
}

// Per-call times of back-to-back calls, one entry per repetition.
struct Timing {
  std::vector<double> seconds;
  int calls_per_repetition = 1;
};

// Times `call` (which enqueues work on `stream`) as the per-call time of back-to-back calls:
// two warm-up calls, then repetitions of a batch of calls between two events. The batch is
// long enough that event resolution does not matter; the repetitions fit the sample budget.
template <typename Call>
Timing time_calls_raw(cudaStream_t stream, const Budget& budget, Call&& call) {
  EventPair events;
  call();
  call();
  CHECK_CUDA(cudaStreamSynchronize(stream));
  events.start(stream);
  call();
  const double single = std::max(events.stop_seconds(stream), 1e-7);
  Timing timing;
  timing.calls_per_repetition =
      std::clamp(static_cast<int>(std::ceil(budget.min_batch_seconds / single)), 1, 1000);
  const int repetitions =
      std::clamp(static_cast<int>(budget.seconds_per_sample / (single * timing.calls_per_repetition)),
                 budget.min_repetitions, budget.max_repetitions);
  for (int r = 0; r < repetitions; ++r) {
    events.start(stream);
    for (int b = 0; b < timing.calls_per_repetition; ++b)
      call();
    timing.seconds.push_back(events.stop_seconds(stream) / timing.calls_per_repetition);
  }
  return timing;
}

template <typename Call>
Stats time_calls(cudaStream_t stream, const Budget& budget, Call&& call) {
  const Timing timing = time_calls_raw(stream, budget, call);
  return summarise(timing.seconds, timing.calls_per_repetition);
}

// ---------------------------------------------------------------------------------------------
// Context shared by the benchmarks

struct Context {
  Options options;
  Budget budget{};
  cudaDeviceProp properties{};
  int device_count = 0;
  cudaStream_t stream{};
  cublasHandle_t blas{};
  cublasLtHandle_t blas_lt{};
  DeviceBuffer<unsigned char> lt_workspace;
  std::vector<std::string> samples;
  std::vector<std::string> notes;

  bool has_fp8() const { return properties.major * 10 + properties.minor >= 89; }
  void add(const JsonObject& object) { samples.push_back(object.str()); }
  void note(const std::string& line) {
    std::fprintf(stderr, "  %s\n", line.c_str());
    notes.push_back(line);
  }
};

void progress(const char* what) {
  std::fprintf(stderr, "[moesim_calibrate_gpu] %s\n", what);
}

// ---------------------------------------------------------------------------------------------
// HBM bandwidth: read, write, copy with 16-byte accesses; sizes from L2-resident to several GB.

__global__ void read_kernel(const uint4* data, size_t count, uint32_t* sink) {
  uint32_t accumulator = 0;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count;
       i += size_t(gridDim.x) * blockDim.x) {
    const uint4 value = data[i];
    accumulator ^= value.x ^ value.y ^ value.z ^ value.w;
  }
  // The data is never all-zero (fill_u32), so this store practically never happens; it keeps
  // the loads alive without adding traffic.
  if (accumulator == 0) sink[0] = accumulator + 1;
}

__global__ void write_kernel(uint4* data, size_t count, uint32_t value) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count;
       i += size_t(gridDim.x) * blockDim.x)
    data[i] = make_uint4(value, value + 1, value + 2, value + 3);
}

__global__ void copy_kernel(const uint4* source, uint4* destination, size_t count) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count;
       i += size_t(gridDim.x) * blockDim.x)
    destination[i] = source[i];
}

int stream_blocks(const Context& context, size_t vectors) {
  const size_t wanted = (vectors + kThreads - 1) / kThreads;
  return static_cast<int>(std::min<size_t>(wanted, size_t(context.properties.multiProcessorCount) * 8));
}

void bench_memory(Context& context) {
  progress("HBM bandwidth (read, write, copy)");
  std::vector<double> sizes_mb =
      context.options.quick ? std::vector<double>{1, 16, 64}
                            : std::vector<double>{0.25, 1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
  const size_t largest = static_cast<size_t>(sizes_mb.back() * (1 << 20));
  DeviceBuffer<uint32_t> source(largest / 4), destination(largest / 4), sink(1);
  randomise(source);
  randomise(destination);
  for (double mb : sizes_mb) {
    const size_t bytes = static_cast<size_t>(mb * (1 << 20));
    const size_t vectors = bytes / 16;
    const int blocks = stream_blocks(context, vectors);
    const auto* in = reinterpret_cast<const uint4*>(source.get());
    auto* out = reinterpret_cast<uint4*>(destination.get());
    const Stats read = time_calls(context.stream, context.budget, [&] {
      read_kernel<<<blocks, kThreads, 0, context.stream>>>(in, vectors, sink.get());
    });
    CHECK_LAST_KERNEL();
    const Stats write = time_calls(context.stream, context.budget, [&] {
      write_kernel<<<blocks, kThreads, 0, context.stream>>>(out, vectors, 7u);
    });
    CHECK_LAST_KERNEL();
    const Stats copy = time_calls(context.stream, context.budget, [&] {
      copy_kernel<<<blocks, kThreads, 0, context.stream>>>(in, out, vectors);
    });
    CHECK_LAST_KERNEL();
    const double read_bytes[] = {double(bytes), 0.0, double(bytes)};
    const double written_bytes[] = {0.0, double(bytes), double(bytes)};
    const char* kinds[] = {"read", "write", "copy"};
    const Stats* stats[] = {&read, &write, &copy};
    for (int i = 0; i < 3; ++i) {
      const std::string label = std::string(kinds[i]) + " " + JsonObject::number(mb) + " MiB";
      context.add(sample("memory", label, *stats[i])
                      .add("kind", kinds[i])
                      .add("bytes_read", read_bytes[i])
                      .add("bytes_written", written_bytes[i]));
    }
    std::fprintf(stderr, "  %8.2f MiB: read %7.0f GB/s, write %7.0f GB/s, copy %7.0f GB/s (read+write)\n", mb,
                 bytes / read.median * 1e-9, bytes / write.median * 1e-9, 2.0 * bytes / copy.median * 1e-9);
  }
}

// ---------------------------------------------------------------------------------------------
// GEMM: Y[m,n] = X[m,k] W^T with W stored [n,k] (the nn.Linear layout). In cuBLAS's column-major
// terms this is the "TN" product D(n x m) = W^T(n x k) X(k x m), the layout cuBLASLt needs for FP8.

constexpr float kOne = 1.0f;
constexpr float kZero = 0.0f;

void gemm_bf16(cublasHandle_t blas, int m, int n, int k, const bf16* weights, const bf16* input,
               bf16* output) {
  CHECK_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &kOne, weights, CUDA_R_16BF, k, input,
                            CUDA_R_16BF, k, &kZero, output, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
}

// One FP8 (E4M3 x E4M3 -> BF16) cuBLASLt problem with its chosen algorithm.
class Fp8Gemm {
 public:
  Fp8Gemm(Context& context, int m, int n, int k) : context_(context) {
    CHECK_CUBLAS(cublasLtMatmulDescCreate(&operation_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
    CHECK_CUBLAS(cublasLtMatmulDescSetAttribute(operation_, CUBLASLT_MATMUL_DESC_TRANSA, &transpose,
                                                sizeof transpose));
    CHECK_CUBLAS(cublasLtMatmulDescSetAttribute(operation_, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof keep));
    CHECK_CUBLAS(cublasLtMatrixLayoutCreate(&weights_, CUDA_R_8F_E4M3, k, n, k));
    CHECK_CUBLAS(cublasLtMatrixLayoutCreate(&input_, CUDA_R_8F_E4M3, k, m, k));
    CHECK_CUBLAS(cublasLtMatrixLayoutCreate(&output_, CUDA_R_16BF, n, m, n));
    cublasLtMatmulPreference_t preference{};
    CHECK_CUBLAS(cublasLtMatmulPreferenceCreate(&preference));
    const size_t workspace = context.lt_workspace.bytes();
    CHECK_CUBLAS(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &workspace, sizeof workspace));
    int returned = 0;
    const cublasStatus_t status =
        cublasLtMatmulAlgoGetHeuristic(context.blas_lt, operation_, weights_, input_, output_, output_,
                                       preference, 1, &heuristic_, &returned);
    CHECK_CUBLAS(cublasLtMatmulPreferenceDestroy(preference));
    supported_ = status == CUBLAS_STATUS_SUCCESS && returned > 0;
  }
  ~Fp8Gemm() {
    cublasLtMatrixLayoutDestroy(output_);
    cublasLtMatrixLayoutDestroy(input_);
    cublasLtMatrixLayoutDestroy(weights_);
    cublasLtMatmulDescDestroy(operation_);
  }
  Fp8Gemm(const Fp8Gemm&) = delete;
  Fp8Gemm& operator=(const Fp8Gemm&) = delete;

  bool supported() const { return supported_; }
  void run(const fp8* weights, const fp8* input, bf16* output) {
    CHECK_CUBLAS(cublasLtMatmul(context_.blas_lt, operation_, &kOne, weights, weights_, input, input_, &kZero,
                                output, output_, output, output_, &heuristic_.algo,
                                context_.lt_workspace.get(), context_.lt_workspace.bytes(), context_.stream));
  }

 private:
  Context& context_;
  cublasLtMatmulDesc_t operation_{};
  cublasLtMatrixLayout_t weights_{}, input_{}, output_{};
  cublasLtMatmulHeuristicResult_t heuristic_{};
  bool supported_ = false;
};

struct GemmShape {
  std::string label;
  int n, k;
};

// Weights rotate over enough copies that consecutive calls never find them in L2, as in a real
// forward pass where every layer and expert has its own weights.
int weight_copies(const Context& context, size_t weight_bytes) {
  const double footprint = 4.0 * context.properties.l2CacheSize;
  return std::clamp(static_cast<int>(std::ceil(footprint / double(weight_bytes))), 1, 64);
}

struct GemmCase {
  GemmShape shape;
  int m;
  bool fp8_precision;
  bool supported = true;
  Timing timing;
};

// Adds one pass of repetitions to `gemm_case`.
void time_gemm(Context& context, const Budget& budget, GemmCase& gemm_case) {
  const GemmShape& shape = gemm_case.shape;
  const int m = gemm_case.m;
  const size_t weight_count = size_t(shape.n) * shape.k;
  const int copies = weight_copies(context, weight_count * (gemm_case.fp8_precision ? 1 : 2));
  int next = 0;
  Timing timing;
  if (gemm_case.fp8_precision) {
    Fp8Gemm gemm(context, m, shape.n, shape.k);
    if (!gemm.supported()) {
      gemm_case.supported = false;
      return;
    }
    DeviceBuffer<fp8> weights(weight_count * copies), input(size_t(m) * shape.k);
    DeviceBuffer<bf16> output(size_t(m) * shape.n);
    randomise(weights);
    randomise(input);
    timing = time_calls_raw(context.stream, budget, [&] {
      gemm.run(weights.get() + weight_count * next, input.get(), output.get());
      next = (next + 1) % copies;
    });
  } else {
    DeviceBuffer<bf16> weights(weight_count * copies), input(size_t(m) * shape.k),
        output(size_t(m) * shape.n);
    randomise(weights, 1.0f / std::sqrt(float(shape.k)));
    randomise(input);
    timing = time_calls_raw(context.stream, budget, [&] {
      gemm_bf16(context.blas, m, shape.n, shape.k, weights.get() + weight_count * next, input.get(),
                output.get());
      next = (next + 1) % copies;
    });
  }
  gemm_case.timing.seconds.insert(gemm_case.timing.seconds.end(), timing.seconds.begin(),
                                  timing.seconds.end());
  gemm_case.timing.calls_per_repetition = timing.calls_per_repetition;
}

struct ExpertShape {
  std::string model;
  int hidden, ffn;
};

std::vector<ExpertShape> expert_shapes(const Options& options) {
  // REFERENCE.md §4.
  if (options.quick) return {{"qwen3-30b-a3b", 2048, 768}};
  return {{"deepseek-v3", 7168, 2048},  {"mixtral-8x7b", 4096, 14336}, {"qwen3-235b-a22b", 4096, 1536},
          {"qwen3-30b-a3b", 2048, 768}, {"olmoe-1b-7b", 2048, 1024},   {"gpt-oss-120b", 2880, 2880}};
}

void bench_gemm(Context& context) {
  progress("GEMM throughput (cublasGemmEx BF16; cuBLASLt FP8 E4M3 when compute capability >= 8.9)");
  std::vector<GemmShape> shapes;
  for (const ExpertShape& expert : expert_shapes(context.options)) {
    shapes.push_back({expert.model + " expert gate_up", 2 * expert.ffn, expert.hidden});
    shapes.push_back({expert.model + " expert down", expert.hidden, expert.ffn});
  }
  std::vector<int> tokens = context.options.quick
                                ? std::vector<int>{1, 64, 512}
                                : std::vector<int>{1, 4, 16, 64, 128, 256, 512, 1024, 4096, 16384};
  std::vector<GemmShape> dense_shapes;
  std::vector<int> dense_tokens = {1, 64, 1024, 8192};
  if (!context.options.quick) {
    dense_shapes = {{"llama-70b qkv_proj", 10240, 8192},
                    {"llama-70b o_proj", 8192, 8192},
                    {"mixtral-8x7b qkv_proj", 6144, 4096},
                    {"qwen3-235b-a22b qkv_proj", 9216, 4096},
                    {"deepseek-v3 q_a_proj+kv_a_proj", 2112, 7168},
                    {"deepseek-v3 q_b_proj", 24576, 1536},
                    {"deepseek-v3 o_proj", 7168, 16384},
                    {"square 8192", 8192, 8192}};
  }
  const int precisions = context.has_fp8() ? 2 : 1;
  if (!context.has_fp8()) context.note("skipped fp8 GEMMs: compute capability below 8.9");
  std::vector<GemmCase> cases;
  for (int p = 0; p < precisions; ++p) {
    for (const GemmShape& shape : shapes)
      for (int m : tokens)
        cases.push_back({shape, m, p == 1, true, {}});
    for (const GemmShape& shape : dense_shapes)
      for (int m : dense_tokens)
        cases.push_back({shape, m, p == 1, true, {}});
  }
  // The sweep runs in passes whose repetitions are pooled, so a slow spell of the machine (host
  // launch speed varies on virtual machines) touches a share of every case, not all of a few.
  const int passes = context.options.quick ? 1 : 3;
  Budget budget = context.budget;
  budget.min_repetitions = std::max(2, budget.min_repetitions / passes);
  budget.max_repetitions = std::max(budget.min_repetitions, budget.max_repetitions / passes);
  budget.seconds_per_sample /= passes;
  for (int pass = 0; pass < passes; ++pass) {
    std::fprintf(stderr, "  pass %d of %d over %zu GEMMs\n", pass + 1, passes, cases.size());
    for (GemmCase& gemm_case : cases)
      if (gemm_case.supported) time_gemm(context, budget, gemm_case);
  }
  for (const GemmCase& gemm_case : cases) {
    const GemmShape& shape = gemm_case.shape;
    const char* precision = gemm_case.fp8_precision ? "fp8" : "bf16";
    if (!gemm_case.supported) {
      context.note(std::string("skipped ") + precision + " " + shape.label +
                   " m=" + std::to_string(gemm_case.m) + ": cuBLASLt has no algorithm");
      continue;
    }
    const Stats stats = summarise(gemm_case.timing.seconds, gemm_case.timing.calls_per_repetition);
    context.add(sample("gemm", shape.label, stats)
                    .add("precision", precision)
                    .add("m", gemm_case.m)
                    .add("n", shape.n)
                    .add("k", shape.k));
    std::fprintf(stderr, "  %-4s %-34s m=%6d n=%6d k=%6d: %9.2f us %7.1f TFLOP/s\n", precision,
                 shape.label.c_str(), gemm_case.m, shape.n, shape.k, stats.median * 1e6,
                 2.0 * gemm_case.m * shape.n * shape.k / stats.median * 1e-12);
  }
}

// ---------------------------------------------------------------------------------------------
// Expert loads: per-expert token counts for a total, uniform or Zipf-skewed, deterministic.

std::vector<int> expert_loads(int assignments, int experts, double zipf_exponent) {
  std::vector<double> weight(experts);
  double total = 0;
  for (int e = 0; e < experts; ++e)
    total += weight[e] = 1.0 / std::pow(e + 1.0, zipf_exponent);
  std::vector<int> loads(experts);
  int given = 0;
  for (int e = 0; e < experts; ++e)
    given += loads[e] = static_cast<int>(std::floor(assignments * weight[e] / total));
  for (int e = 0; given < assignments; e = (e + 1) % experts, ++given)
    ++loads[e];
  return loads;
}

// Grouped expert GEMMs as a loop of cublasGemmEx on one stream (gate_up then down per expert), the
// way a non-fused MoE implementation issues them; every expert has its own weights.
class ExpertWeights {
 public:
  ExpertWeights(int experts, int hidden, int ffn)
      : hidden_(hidden),
        ffn_(ffn),
        gate_up_(size_t(experts) * 2 * ffn * hidden),
        down_(size_t(experts) * hidden * ffn) {
    randomise(gate_up_, 1.0f / std::sqrt(float(hidden)));
    randomise(down_, 1.0f / std::sqrt(float(ffn)));
  }
  const bf16* gate_up(int expert) const { return gate_up_.get() + size_t(expert) * 2 * ffn_ * hidden_; }
  const bf16* down(int expert) const { return down_.get() + size_t(expert) * hidden_ * ffn_; }

 private:
  int hidden_, ffn_;
  DeviceBuffer<bf16> gate_up_, down_;
};

void bench_grouped_gemm(Context& context) {
  progress("grouped expert GEMMs (loop of cublasGemmEx, BF16), uniform and skewed loads");
  struct Case {
    ExpertShape shape;
    int experts;
  };
  std::vector<Case> cases = context.options.quick ? std::vector<Case>{{{"qwen3-30b-a3b", 2048, 768}, 16}}
                                                  : std::vector<Case>{{{"qwen3-30b-a3b", 2048, 768}, 128},
                                                                      {{"deepseek-v3", 7168, 2048}, 32},
                                                                      {{"mixtral-8x7b", 4096, 14336}, 8}};
  std::vector<int> totals =
      context.options.quick ? std::vector<int>{16, 256} : std::vector<int>{8, 128, 1024, 8192};
  const double skews[] = {0.0, 1.2};
  const int repetitions = context.options.quick ? 3 : 15;
  for (const Case& c : cases) {
    ExpertWeights weights(c.experts, c.shape.hidden, c.shape.ffn);
    const int largest = totals.back();
    DeviceBuffer<bf16> input(size_t(largest) * c.shape.hidden), middle(size_t(largest) * 2 * c.shape.ffn),
        output(size_t(largest) * c.shape.hidden);
    randomise(input);
    randomise(middle);
    struct GroupedCase {
      int total;
      double skew;
      std::vector<int> loads;
      std::vector<double> seconds;
    };
    std::vector<GroupedCase> grouped_cases;
    for (int total : totals)
      for (double skew : skews)
        grouped_cases.push_back({total, skew, expert_loads(total, c.experts, skew), {}});
    auto run = [&](const std::vector<int>& loads) {
      size_t row = 0;
      for (int e = 0; e < c.experts; ++e) {
        if (loads[e] == 0) continue;
        gemm_bf16(context.blas, loads[e], 2 * c.shape.ffn, c.shape.hidden, weights.gate_up(e),
                  input.get() + row * c.shape.hidden, middle.get() + row * 2 * c.shape.ffn);
        gemm_bf16(context.blas, loads[e], c.shape.hidden, c.shape.ffn, weights.down(e),
                  middle.get() + row * 2 * c.shape.ffn, output.get() + row * c.shape.hidden);
        row += loads[e];
      }
    };
    // Repetitions interleaved over the cases (see bench_moe_layer); two untimed passes first.
    EventPair events;
    for (int pass = -2; pass < repetitions; ++pass) {
      for (GroupedCase& grouped : grouped_cases) {
        events.start(context.stream);
        run(grouped.loads);
        const double seconds = events.stop_seconds(context.stream);
        if (pass >= 0) grouped.seconds.push_back(seconds);
      }
    }
    const std::string label = c.shape.model + " x" + std::to_string(c.experts) + " experts";
    for (const GroupedCase& grouped : grouped_cases) {
      const Stats stats = summarise(grouped.seconds, 1);
      context.add(sample("grouped_gemm", label, stats)
                      .add("precision", "bf16")
                      .add("hidden", c.shape.hidden)
                      .add("ffn", c.shape.ffn)
                      .add("zipf_exponent", grouped.skew)
                      .add("tokens_per_expert", grouped.loads));
      std::fprintf(stderr, "  %-34s %6d assignments, zipf %.1f: %9.2f us\n", label.c_str(), grouped.total,
                   grouped.skew, stats.median * 1e6);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Attention decode: one query token per sequence against its KV cache (BF16, head dim 128), a
// simple split-context kernel in the FlashDecoding manner: each block takes one (sequence, KV head,
// context slice); its warps stride over positions with an online softmax, lanes hold 4 of the 128
// dimensions; a second kernel merges the slices. Enough slices are used to fill the GPU.

constexpr int kHeadDim = 128;
constexpr int kDecodeWarps = 4;
constexpr int kMaxGroup = 8;
constexpr int kMinPositionsPerSlice = 256;

template <int Group>
__global__ void attention_decode_kernel(const bf16* query, const bf16* keys, const bf16* values,
                                        int context_length, int kv_heads, int slices, float* partial_max,
                                        float* partial_sum, float* partial_accumulator) {
  const int pair = blockIdx.x / slices, slice = blockIdx.x % slices;
  const int sequence = pair / kv_heads, kv_head = pair % kv_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int slice_length = (context_length + slices - 1) / slices;
  const int first = slice * slice_length, last = min(context_length, first + slice_length);
  const size_t kv_row = size_t(kv_heads) * kHeadDim;
  const bf16* k_base = keys + size_t(sequence) * context_length * kv_row + size_t(kv_head) * kHeadDim;
  const bf16* v_base = values + size_t(sequence) * context_length * kv_row + size_t(kv_head) * kHeadDim;
  const bf16* q_base = query + size_t(pair) * Group * kHeadDim;

  float q[Group][4], accumulator[Group][4], running_max[Group], running_sum[Group];
  for (int g = 0; g < Group; ++g) {
    for (int d = 0; d < 4; ++d) {
      q[g][d] = __bfloat162float(q_base[g * kHeadDim + lane * 4 + d]) * 0.08838834764f;  // 1/sqrt(128)
      accumulator[g][d] = 0.0f;
    }
    running_max[g] = -INFINITY;
    running_sum[g] = 0.0f;
  }
  for (int position = first + warp; position < last; position += kDecodeWarps) {
    const uint2 k_raw = *reinterpret_cast<const uint2*>(k_base + size_t(position) * kv_row + lane * 4);
    const uint2 v_raw = *reinterpret_cast<const uint2*>(v_base + size_t(position) * kv_row + lane * 4);
    const bf16* k4 = reinterpret_cast<const bf16*>(&k_raw);
    const bf16* v4 = reinterpret_cast<const bf16*>(&v_raw);
    float k[4], v[4];
    for (int d = 0; d < 4; ++d) {
      k[d] = __bfloat162float(k4[d]);
      v[d] = __bfloat162float(v4[d]);
    }
    for (int g = 0; g < Group; ++g) {
      float score = q[g][0] * k[0] + q[g][1] * k[1] + q[g][2] * k[2] + q[g][3] * k[3];
      for (int offset = 16; offset > 0; offset /= 2)
        score += __shfl_xor_sync(0xffffffffu, score, offset);
      const float new_max = fmaxf(running_max[g], score);
      const float rescale = __expf(running_max[g] - new_max);
      const float weight = __expf(score - new_max);
      running_sum[g] = running_sum[g] * rescale + weight;
      for (int d = 0; d < 4; ++d)
        accumulator[g][d] = accumulator[g][d] * rescale + weight * v[d];
      running_max[g] = new_max;
    }
  }
  __shared__ float shared_max[kDecodeWarps][kMaxGroup], shared_sum[kDecodeWarps][kMaxGroup];
  __shared__ float shared_accumulator[kDecodeWarps][kMaxGroup][kHeadDim];
  for (int g = 0; g < Group; ++g) {
    if (lane == 0) {
      shared_max[warp][g] = running_max[g];
      shared_sum[warp][g] = running_sum[g];
    }
    for (int d = 0; d < 4; ++d)
      shared_accumulator[warp][g][lane * 4 + d] = accumulator[g][d];
  }
  __syncthreads();
  // At most 128 slices of at least 256 positions: every slice gives each warp a position, so no
  // block's maximum is -inf.
  const size_t partial = size_t(blockIdx.x) * Group;
  for (int index = threadIdx.x; index < Group * kHeadDim; index += blockDim.x) {
    const int g = index / kHeadDim, d = index % kHeadDim;
    float block_max = -INFINITY;
    for (int w = 0; w < kDecodeWarps; ++w)
      block_max = fmaxf(block_max, shared_max[w][g]);
    float sum = 0.0f, value = 0.0f;
    for (int w = 0; w < kDecodeWarps; ++w) {
      const float scale = __expf(shared_max[w][g] - block_max);
      sum += shared_sum[w][g] * scale;
      value += shared_accumulator[w][g][d] * scale;
    }
    partial_accumulator[(partial + g) * kHeadDim + d] = value;
    if (d == 0) {
      partial_max[partial + g] = block_max;
      partial_sum[partial + g] = sum;
    }
  }
}

// One block per (sequence, KV head): merges the slices' partial softmax states.
__global__ void attention_decode_merge_kernel(int group, int slices, const float* partial_max,
                                              const float* partial_sum, const float* partial_accumulator,
                                              bf16* output) {
  const int pair = blockIdx.x;
  for (int index = threadIdx.x; index < group * kHeadDim; index += blockDim.x) {
    const int g = index / kHeadDim, d = index % kHeadDim;
    float overall_max = -INFINITY;
    for (int s = 0; s < slices; ++s)
      overall_max = fmaxf(overall_max, partial_max[(size_t(pair) * slices + s) * group + g]);
    float sum = 0.0f, value = 0.0f;
    for (int s = 0; s < slices; ++s) {
      const size_t at = (size_t(pair) * slices + s) * group + g;
      const float scale = __expf(partial_max[at] - overall_max);
      sum += partial_sum[at] * scale;
      value += partial_accumulator[at * kHeadDim + d] * scale;
    }
    output[size_t(pair) * group * kHeadDim + index] = __float2bfloat16(value / sum);
  }
}

void bench_attention_decode(Context& context) {
  progress("attention decode (split-context kernel + merge kernel, BF16 KV cache, head dim 128)");
  struct Case {
    int sequences, context_length, kv_heads, group;
  };
  std::vector<Case> cases =
      context.options.quick
          ? std::vector<Case>{{4, 1024, 8, 8}}
          : std::vector<Case>{{1, 4096, 8, 8},   {8, 4096, 8, 8},   {32, 2048, 8, 8},  {64, 8192, 8, 8},
                              {128, 4096, 8, 8}, {256, 1024, 8, 8}, {16, 16384, 4, 8}, {128, 2048, 4, 4},
                              {512, 512, 8, 4},  {32, 32768, 8, 8}, {4, 65536, 8, 8},  {1, 512, 8, 8}};
  for (const Case& c : cases) {
    const size_t kv_count = size_t(c.sequences) * c.context_length * c.kv_heads * kHeadDim;
    DeviceBuffer<bf16> keys(kv_count), values(kv_count);
    DeviceBuffer<bf16> query(size_t(c.sequences) * c.kv_heads * c.group * kHeadDim), output(query.count());
    randomise(keys);
    randomise(values);
    randomise(query);
    const int pairs = c.sequences * c.kv_heads;
    const int wanted = (4 * context.properties.multiProcessorCount + pairs - 1) / pairs;
    const int slices = std::clamp(wanted, 1, std::clamp(c.context_length / kMinPositionsPerSlice, 1, 128));
    DeviceBuffer<float> partial_max(size_t(pairs) * slices * c.group), partial_sum(partial_max.count());
    DeviceBuffer<float> partial_accumulator(partial_max.count() * kHeadDim);
    const int blocks = pairs * slices;
    const Stats stats = time_calls(context.stream, context.budget, [&] {
      if (c.group == 8)
        attention_decode_kernel<8><<<blocks, kDecodeWarps * 32, 0, context.stream>>>(
            query.get(), keys.get(), values.get(), c.context_length, c.kv_heads, slices, partial_max.get(),
            partial_sum.get(), partial_accumulator.get());
      else
        attention_decode_kernel<4><<<blocks, kDecodeWarps * 32, 0, context.stream>>>(
            query.get(), keys.get(), values.get(), c.context_length, c.kv_heads, slices, partial_max.get(),
            partial_sum.get(), partial_accumulator.get());
      attention_decode_merge_kernel<<<pairs, 256, 0, context.stream>>>(
          c.group, slices, partial_max.get(), partial_sum.get(), partial_accumulator.get(), output.get());
    });
    CHECK_LAST_KERNEL();
    const double kv_bytes = 2.0 * kv_count * sizeof(bf16);
    const double flops = 4.0 * c.sequences * c.kv_heads * c.group * double(c.context_length) * kHeadDim;
    const std::string label =
        std::to_string(c.sequences) + " x " + std::to_string(c.context_length) + " tokens";
    context.add(sample("attention_decode", label, stats)
                    .add("sequences", c.sequences)
                    .add("context_length", c.context_length)
                    .add("kv_heads", c.kv_heads)
                    .add("query_heads", c.kv_heads * c.group)
                    .add("head_dim", kHeadDim)
                    .add("kv_bytes", kv_bytes)
                    .add("flops", flops));
    std::fprintf(stderr, "  %-22s kv %8.1f MB: %9.2f us %7.0f GB/s\n", label.c_str(), kv_bytes * 1e-6,
                 stats.median * 1e6, kv_bytes / stats.median * 1e-9);
  }
}

// ---------------------------------------------------------------------------------------------
// Attention prefill, unfused: per head S = Q K^T and O = P V as cuBLAS strided batched GEMMs, with
// a row softmax kernel between them (no causal mask: the full square is computed).

__global__ void softmax_rows_kernel(bf16* scores, int columns) {
  bf16* row = scores + size_t(blockIdx.x) * columns;
  __shared__ float reduction[32];
  float local_max = -INFINITY;
  for (int c = threadIdx.x; c < columns; c += blockDim.x)
    local_max = fmaxf(local_max, __bfloat162float(row[c]));
  for (int offset = 16; offset > 0; offset /= 2)
    local_max = fmaxf(local_max, __shfl_xor_sync(0xffffffffu, local_max, offset));
  if (threadIdx.x % 32 == 0) reduction[threadIdx.x / 32] = local_max;
  __syncthreads();
  float row_max = -INFINITY;
  for (int w = 0; w < int(blockDim.x / 32); ++w)
    row_max = fmaxf(row_max, reduction[w]);
  __syncthreads();
  float local_sum = 0.0f;
  for (int c = threadIdx.x; c < columns; c += blockDim.x)
    local_sum += __expf(__bfloat162float(row[c]) - row_max);
  for (int offset = 16; offset > 0; offset /= 2)
    local_sum += __shfl_xor_sync(0xffffffffu, local_sum, offset);
  if (threadIdx.x % 32 == 0) reduction[threadIdx.x / 32] = local_sum;
  __syncthreads();
  float row_sum = 0.0f;
  for (int w = 0; w < int(blockDim.x / 32); ++w)
    row_sum += reduction[w];
  const float inverse = 1.0f / row_sum;
  for (int c = threadIdx.x; c < columns; c += blockDim.x)
    row[c] = __float2bfloat16(__expf(__bfloat162float(row[c]) - row_max) * inverse);
}

void bench_attention_prefill(Context& context) {
  progress("attention prefill (unfused: cuBLAS strided batched GEMMs + softmax kernel, BF16)");
  const int heads = 32;
  std::vector<int> lengths =
      context.options.quick ? std::vector<int>{256} : std::vector<int>{512, 1024, 2048, 4096, 8192};
  for (int length : lengths) {
    const size_t per_head = size_t(length) * kHeadDim;
    DeviceBuffer<bf16> q(per_head * heads), k(per_head * heads), v(per_head * heads), o(per_head * heads);
    DeviceBuffer<bf16> scores(size_t(length) * length * heads);
    randomise(q, 0.3f);
    randomise(k, 0.3f);
    randomise(v);
    const long long stride = static_cast<long long>(per_head);
    const long long score_stride = static_cast<long long>(length) * length;
    const float scale = 1.0f / std::sqrt(float(kHeadDim));
    const Stats stats = time_calls(context.stream, context.budget, [&] {
      // Row-major S[i,j] = sum_d Q[i,d] K[j,d]: the same "TN" product as gemm_bf16 with K as weights.
      CHECK_CUBLAS(cublasGemmStridedBatchedEx(
          context.blas, CUBLAS_OP_T, CUBLAS_OP_N, length, length, kHeadDim, &scale, k.get(), CUDA_R_16BF,
          kHeadDim, stride, q.get(), CUDA_R_16BF, kHeadDim, stride, &kZero, scores.get(), CUDA_R_16BF, length,
          score_stride, heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      softmax_rows_kernel<<<length * heads, 256, 0, context.stream>>>(scores.get(), length);
      // Row-major O[i,d] = sum_j P[i,j] V[j,d]: column-major O^T = V^T P^T, both stored as is ("NN").
      CHECK_CUBLAS(cublasGemmStridedBatchedEx(
          context.blas, CUBLAS_OP_N, CUBLAS_OP_N, kHeadDim, length, length, &kOne, v.get(), CUDA_R_16BF,
          kHeadDim, stride, scores.get(), CUDA_R_16BF, length, score_stride, &kZero, o.get(), CUDA_R_16BF,
          kHeadDim, stride, heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    });
    CHECK_LAST_KERNEL();
    const double flops = 4.0 * heads * double(length) * length * kHeadDim;
    // Q, K, V read and O written once; the score matrix written by the first GEMM, read and written
    // by the softmax, read by the second GEMM.
    const double bytes = 4.0 * per_head * heads * sizeof(bf16) + 4.0 * double(scores.bytes());
    const std::string label = std::to_string(heads) + " heads x " + std::to_string(length) + " tokens";
    context.add(sample("attention_prefill", label, stats)
                    .add("heads", heads)
                    .add("sequence_length", length)
                    .add("head_dim", kHeadDim)
                    .add("flops", flops)
                    .add("bytes", bytes));
    std::fprintf(stderr, "  %-26s: %9.2f us %7.1f TFLOP/s\n", label.c_str(), stats.median * 1e6,
                 flops / stats.median * 1e-12);
  }
}

// ---------------------------------------------------------------------------------------------
// Launch overhead: back-to-back empty kernels (per launch), and launch + stream synchronise
// measured on the host clock (a full round trip, as a host loop that waits on the GPU pays it).

__global__ void empty_kernel() {}

void bench_launch(Context& context) {
  progress("kernel launch and synchronisation overhead");
  const Stats launch =
      time_calls(context.stream, context.budget, [&] { empty_kernel<<<1, 32, 0, context.stream>>>(); });
  CHECK_LAST_KERNEL();
  context.add(sample("launch", "back-to-back empty kernels", launch).add("kind", "kernel"));
  const int repetitions = context.options.quick ? 20 : 200;
  std::vector<double> round_trips;
  for (int r = 0; r < repetitions + 5; ++r) {
    const auto start = std::chrono::steady_clock::now();
    empty_kernel<<<1, 32, 0, context.stream>>>();
    CHECK_CUDA(cudaStreamSynchronize(context.stream));
    const auto stop = std::chrono::steady_clock::now();
    if (r >= 5) round_trips.push_back(std::chrono::duration<double>(stop - start).count());
  }
  CHECK_LAST_KERNEL();
  const Stats sync = summarise(round_trips, 1);
  context.add(
      sample("launch", "empty kernel + cudaStreamSynchronize (host clock)", sync).add("kind", "sync"));
  std::fprintf(stderr, "  launch %.2f us per kernel back to back; launch+sync %.2f us\n", launch.median * 1e6,
               sync.median * 1e6);
}

// ---------------------------------------------------------------------------------------------
// End-to-end MoE layer on one GPU, the held-out check: router logits (cuBLAS) -> top-k with a
// softmax over the chosen experts and per-expert counts -> exclusive scan -> counts to the host
// (a non-fused implementation needs them to size its GEMMs) -> permute tokens into expert order ->
// per-expert gate_up GEMMs -> SiLU(gate)*up -> per-expert down GEMMs -> weighted combine.
// Skew comes from a per-expert router bias -skew*ln(1+e), so the counts are the router's own.

constexpr int kMaxTopK = 8;

__global__ void topk_kernel(const bf16* logits, const float* bias, int tokens, int experts, int top_k,
                            int* chosen_expert, float* chosen_weight, int* counts) {
  const int token = blockIdx.x * blockDim.x + threadIdx.x;
  if (token >= tokens) return;
  float best[kMaxTopK];
  int best_index[kMaxTopK];
  for (int j = 0; j < top_k; ++j) {
    best[j] = -INFINITY;
    best_index[j] = 0;
  }
  const bf16* row = logits + size_t(token) * experts;
  for (int e = 0; e < experts; ++e) {
    const float value = __bfloat162float(row[e]) + bias[e];
    if (value <= best[top_k - 1]) continue;
    int j = top_k - 1;
    while (j > 0 && best[j - 1] < value) {
      best[j] = best[j - 1];
      best_index[j] = best_index[j - 1];
      --j;
    }
    best[j] = value;
    best_index[j] = e;
  }
  float total = 0.0f;
  for (int j = 0; j < top_k; ++j)
    total += __expf(best[j] - best[0]);
  for (int j = 0; j < top_k; ++j) {
    chosen_expert[token * top_k + j] = best_index[j];
    chosen_weight[token * top_k + j] = __expf(best[j] - best[0]) / total;
    atomicAdd(&counts[best_index[j]], 1);
  }
}

__global__ void scan_kernel(const int* counts, int experts, int* offsets, int* cursors) {
  int running = 0;
  for (int e = 0; e < experts; ++e) {
    offsets[e] = running;
    cursors[e] = running;
    running += counts[e];
  }
}

// One block per token-expert assignment; rows move as 16-byte vectors (hidden % 8 == 0).
__global__ void permute_kernel(const bf16* tokens, const int* chosen_expert, int top_k, int hidden,
                               int* cursors, int* slot_of, bf16* permuted) {
  __shared__ int slot;
  const int assignment = blockIdx.x;
  if (threadIdx.x == 0) {
    slot = atomicAdd(&cursors[chosen_expert[assignment]], 1);
    slot_of[assignment] = slot;
  }
  __syncthreads();
  const uint4* source = reinterpret_cast<const uint4*>(tokens + size_t(assignment / top_k) * hidden);
  uint4* destination = reinterpret_cast<uint4*>(permuted + size_t(slot) * hidden);
  for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x)
    destination[i] = source[i];
}

__global__ void silu_mul_kernel(const bf16* gate_up, size_t rows, int ffn, bf16* activated) {
  const size_t count = rows * ffn;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count;
       i += size_t(gridDim.x) * blockDim.x) {
    const size_t row = i / ffn, column = i % ffn;
    const float gate = __bfloat162float(gate_up[row * 2 * ffn + column]);
    const float up = __bfloat162float(gate_up[row * 2 * ffn + ffn + column]);
    activated[i] = __float2bfloat16(gate / (1.0f + __expf(-gate)) * up);
  }
}

__global__ void combine_kernel(const bf16* expert_output, const int* slot_of, const float* chosen_weight,
                               int top_k, int hidden, bf16* output) {
  const int token = blockIdx.x;
  for (int d = threadIdx.x; d < hidden; d += blockDim.x) {
    float sum = 0.0f;
    for (int j = 0; j < top_k; ++j) {
      const int slot = slot_of[token * top_k + j];
      sum += chosen_weight[token * top_k + j] * __bfloat162float(expert_output[size_t(slot) * hidden + d]);
    }
    output[size_t(token) * hidden + d] = __float2bfloat16(sum);
  }
}

struct MoeLayerCase {
  std::string model;
  int hidden, ffn, experts, top_k;
};

void bench_moe_layer(Context& context) {
  progress("end-to-end MoE layer (held-out check), BF16");
  std::vector<MoeLayerCase> cases =
      context.options.quick ? std::vector<MoeLayerCase>{{"qwen3-30b-a3b", 2048, 768, 32, 4}}
                            : std::vector<MoeLayerCase>{{"qwen3-30b-a3b", 2048, 768, 128, 8},
                                                        {"qwen3-235b-a22b", 4096, 1536, 128, 8},
                                                        {"mixtral-8x7b", 4096, 14336, 8, 2},
                                                        {"deepseek-v3 ep4 slice", 7168, 2048, 64, 8}};
  std::vector<int> token_counts =
      context.options.quick ? std::vector<int>{4, 128} : std::vector<int>{1, 8, 64, 512, 4096};
  const double skews[] = {0.0, 1.0};
  const int repetitions = context.options.quick ? 3 : 20;
  int* host_counts = nullptr;
  CHECK_CUDA(cudaMallocHost(&host_counts, 256 * sizeof(int)));
  for (const MoeLayerCase& c : cases) {
    ExpertWeights weights(c.experts, c.hidden, c.ffn);
    DeviceBuffer<bf16> router(size_t(c.experts) * c.hidden);
    randomise(router, 3.0f / std::sqrt(float(c.hidden)));  // logits of unit variance
    std::vector<int> tokens_here = token_counts;
    if (!context.options.quick && c.model == "qwen3-30b-a3b") tokens_here.push_back(16384);
    const int most_tokens = tokens_here.back();
    const size_t most_rows = size_t(most_tokens) * c.top_k;
    DeviceBuffer<bf16> input(size_t(most_tokens) * c.hidden), logits(size_t(most_tokens) * c.experts);
    DeviceBuffer<bf16> permuted(most_rows * c.hidden), gate_up(most_rows * 2 * c.ffn),
        activated(most_rows * c.ffn);
    DeviceBuffer<bf16> expert_output(most_rows * c.hidden), output(size_t(most_tokens) * c.hidden);
    DeviceBuffer<int> chosen_expert(most_rows), slot_of(most_rows), counts(c.experts), offsets(c.experts),
        cursors(c.experts);
    DeviceBuffer<float> chosen_weight(most_rows), bias(c.experts);
    randomise(input);
    auto layer = [&](int tokens) {
      const size_t rows = size_t(tokens) * c.top_k;
      CHECK_CUDA(cudaMemsetAsync(counts.get(), 0, counts.bytes(), context.stream));
      gemm_bf16(context.blas, tokens, c.experts, c.hidden, router.get(), input.get(), logits.get());
      topk_kernel<<<(tokens + 127) / 128, 128, 0, context.stream>>>(logits.get(), bias.get(), tokens,
                                                                    c.experts, c.top_k, chosen_expert.get(),
                                                                    chosen_weight.get(), counts.get());
      CHECK_LAST_KERNEL();
      scan_kernel<<<1, 1, 0, context.stream>>>(counts.get(), c.experts, offsets.get(), cursors.get());
      CHECK_LAST_KERNEL();
      CHECK_CUDA(
          cudaMemcpyAsync(host_counts, counts.get(), counts.bytes(), cudaMemcpyDeviceToHost, context.stream));
      CHECK_CUDA(cudaStreamSynchronize(context.stream));
      permute_kernel<<<static_cast<unsigned>(rows), 128, 0, context.stream>>>(
          input.get(), chosen_expert.get(), c.top_k, c.hidden, cursors.get(), slot_of.get(), permuted.get());
      CHECK_LAST_KERNEL();
      size_t row = 0;
      for (int e = 0; e < c.experts; ++e) {
        if (host_counts[e] == 0) continue;
        gemm_bf16(context.blas, host_counts[e], 2 * c.ffn, c.hidden, weights.gate_up(e),
                  permuted.get() + row * c.hidden, gate_up.get() + row * 2 * c.ffn);
        row += host_counts[e];
      }
      const int act_blocks = static_cast<int>(std::min<size_t>(
          (rows * c.ffn + kThreads - 1) / kThreads, size_t(context.properties.multiProcessorCount) * 8));
      silu_mul_kernel<<<act_blocks, kThreads, 0, context.stream>>>(gate_up.get(), rows, c.ffn,
                                                                   activated.get());
      CHECK_LAST_KERNEL();
      row = 0;
      for (int e = 0; e < c.experts; ++e) {
        if (host_counts[e] == 0) continue;
        gemm_bf16(context.blas, host_counts[e], c.hidden, c.ffn, weights.down(e),
                  activated.get() + row * c.ffn, expert_output.get() + row * c.hidden);
        row += host_counts[e];
      }
      combine_kernel<<<tokens, 256, 0, context.stream>>>(
          expert_output.get(), slot_of.get(), chosen_weight.get(), c.top_k, c.hidden, output.get());
      CHECK_LAST_KERNEL();
    };
    struct LayerCase {
      double skew;
      int tokens;
      std::vector<int> loads;
      std::vector<double> seconds;
    };
    std::vector<LayerCase> layer_cases;
    for (double skew : skews)
      for (int tokens : tokens_here)
        layer_cases.push_back({skew, tokens, {}, {}});
    auto set_skew = [&](double skew) {
      std::vector<float> host_bias(c.experts);
      for (int e = 0; e < c.experts; ++e)
        host_bias[e] = static_cast<float>(-skew * std::log(1.0 + e));
      CHECK_CUDA(cudaMemcpy(bias.get(), host_bias.data(), bias.bytes(), cudaMemcpyHostToDevice));
    };
    // Repetitions are interleaved over the cases, so a slow spell of the machine (clocks, host
    // noise) spreads over all cases instead of shifting one; the medians then drop it.
    EventPair events;
    for (int pass = -2; pass < repetitions; ++pass) {
      for (LayerCase& layer_case : layer_cases) {
        set_skew(layer_case.skew);
        if (pass < 0) {
          layer(layer_case.tokens);
          CHECK_CUDA(cudaStreamSynchronize(context.stream));
          continue;
        }
        events.start(context.stream);
        layer(layer_case.tokens);
        layer_case.seconds.push_back(events.stop_seconds(context.stream));
        layer_case.loads.assign(host_counts, host_counts + c.experts);
      }
    }
    for (const LayerCase& layer_case : layer_cases) {
      const Stats stats = summarise(layer_case.seconds, 1);
      const std::string label = c.model + " " + std::to_string(layer_case.tokens) + " tokens";
      context.add(sample("moe_layer", label, stats)
                      .add("precision", "bf16")
                      .add("tokens", layer_case.tokens)
                      .add("hidden", c.hidden)
                      .add("ffn", c.ffn)
                      .add("experts", c.experts)
                      .add("top_k", c.top_k)
                      .add("router_skew", layer_case.skew)
                      .add("tokens_per_expert", layer_case.loads));
      const auto active =
          std::count_if(layer_case.loads.begin(), layer_case.loads.end(), [](int n) { return n > 0; });
      std::fprintf(stderr, "  %-40s skew %.1f, %3d active experts: %9.2f us\n", label.c_str(),
                   layer_case.skew, static_cast<int>(active), stats.median * 1e6);
    }
  }
  CHECK_CUDA(cudaFreeHost(host_counts));
}

// ---------------------------------------------------------------------------------------------
// NCCL all-to-all across the GPUs of this machine (one process, one communicator per GPU).

void bench_all_to_all(Context& context) {
  progress("NCCL all-to-all");
  if (context.device_count < 2) {
    context.note("skipped: one GPU (NCCL all-to-all needs at least two)");
    return;
  }
#ifdef MOESIM_HAVE_NCCL
  const int ranks = context.device_count;
  std::vector<int> devices(ranks);
  for (int r = 0; r < ranks; ++r)
    devices[r] = r;
  std::vector<ncclComm_t> communicators(ranks);
  CHECK_NCCL(ncclCommInitAll(communicators.data(), ranks, devices.data()));
  std::vector<cudaStream_t> streams(ranks);
  std::vector<DeviceBuffer<bf16>> send, receive;
  std::vector<double> per_peer_mb = context.options.quick ? std::vector<double>{0.0625, 1}
                                                          : std::vector<double>{0.0625, 0.25, 1, 4, 16, 64};
  const size_t largest = static_cast<size_t>(per_peer_mb.back() * (1 << 20) / sizeof(bf16));
  for (int r = 0; r < ranks; ++r) {
    CHECK_CUDA(cudaSetDevice(r));
    CHECK_CUDA(cudaStreamCreateWithFlags(&streams[r], cudaStreamNonBlocking));
    send.emplace_back(largest * ranks);
    receive.emplace_back(largest * ranks);
    randomise(send.back());
  }
  for (double mb : per_peer_mb) {
    const size_t count = static_cast<size_t>(mb * (1 << 20) / sizeof(bf16));
    auto exchange = [&] {
      CHECK_NCCL(ncclGroupStart());
      for (int r = 0; r < ranks; ++r) {
        for (int peer = 0; peer < ranks; ++peer) {
          CHECK_NCCL(ncclSend(send[r].get() + count * peer, count, ncclBfloat16, peer, communicators[r],
                              streams[r]));
          CHECK_NCCL(ncclRecv(receive[r].get() + count * peer, count, ncclBfloat16, peer, communicators[r],
                              streams[r]));
        }
      }
      CHECK_NCCL(ncclGroupEnd());
      for (int r = 0; r < ranks; ++r) {
        CHECK_CUDA(cudaSetDevice(r));
        CHECK_CUDA(cudaStreamSynchronize(streams[r]));
      }
    };
    exchange();
    exchange();
    std::vector<double> seconds;
    const int repetitions = context.options.quick ? 3 : 20;
    for (int i = 0; i < repetitions; ++i) {
      const auto start = std::chrono::steady_clock::now();
      exchange();
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    const Stats stats = summarise(seconds, 1);
    const double bytes_per_peer = double(count) * sizeof(bf16);
    context.add(sample("all_to_all",
                       std::to_string(ranks) + " GPUs " + JsonObject::number(mb) + " MiB per peer", stats)
                    .add("ranks", ranks)
                    .add("bytes_per_peer", bytes_per_peer));
    std::fprintf(stderr, "  %d GPUs, %8.3f MiB per peer: %9.2f us\n", ranks, mb, stats.median * 1e6);
  }
  for (int r = 0; r < ranks; ++r) {
    CHECK_CUDA(cudaSetDevice(r));
    CHECK_CUDA(cudaStreamDestroy(streams[r]));
    ncclCommDestroy(communicators[r]);
  }
  send.clear();
  receive.clear();
  CHECK_CUDA(cudaSetDevice(0));
#else
  context.note("skipped: built without NCCL");
#endif
}

// ---------------------------------------------------------------------------------------------

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return buffer;
}

std::string device_json(const Context& context) {
  int driver = 0, runtime = 0, sm_clock_khz = 0, memory_clock_khz = 0, bus_bits = 0;
  CHECK_CUDA(cudaDriverGetVersion(&driver));
  CHECK_CUDA(cudaRuntimeGetVersion(&runtime));
  CHECK_CUDA(cudaDeviceGetAttribute(&sm_clock_khz, cudaDevAttrClockRate, 0));
  CHECK_CUDA(cudaDeviceGetAttribute(&memory_clock_khz, cudaDevAttrMemoryClockRate, 0));
  CHECK_CUDA(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0));
  int cublas_version = 0;
  CHECK_CUBLAS(cublasGetVersion(context.blas, &cublas_version));
  const cudaDeviceProp& p = context.properties;
  JsonObject device;
  device.add("name", p.name)
      .add("compute_capability", std::to_string(p.major) + "." + std::to_string(p.minor))
      .add("sm_count", p.multiProcessorCount)
      .add("max_sm_clock_mhz", sm_clock_khz / 1000.0)
      .add("max_memory_clock_mhz", memory_clock_khz / 1000.0)
      .add("memory_bus_bits", bus_bits)
      .add("hbm_bytes", double(p.totalGlobalMem))
      .add("l2_bytes", double(p.l2CacheSize))
      .add("device_count", context.device_count)
      .add("driver_version", driver)
      .add("runtime_version", runtime)
      .add("cublas_version", cublas_version);
  return device.str();
}

void write_output(const Context& context, const std::string& device, const std::string& started) {
  std::string text = "{\n  \"format\": \"moesim-calibration-measurements\",\n  \"version\": 1,\n";
  text += "  \"date\": \"" + started + "\",\n";
  text += std::string("  \"quick\": ") + (context.options.quick ? "true" : "false") + ",\n";
  text += "  \"device\": " + device + ",\n  \"notes\": [";
  for (size_t i = 0; i < context.notes.size(); ++i)
    text += (i ? ", " : "") + JsonObject::quoted(context.notes[i]);
  text += "],\n  \"samples\": [\n";
  for (size_t i = 0; i < context.samples.size(); ++i)
    text += "    " + context.samples[i] + (i + 1 < context.samples.size() ? ",\n" : "\n");
  text += "  ]\n}\n";
  const std::string temporary = context.options.output + ".partial";
  FILE* file = std::fopen(temporary.c_str(), "w");
  if (file == nullptr || std::fwrite(text.data(), 1, text.size(), file) != text.size() ||
      std::fclose(file) != 0) {
    std::fprintf(stderr, "cannot write %s\n", temporary.c_str());
    std::exit(1);
  }
  if (std::rename(temporary.c_str(), context.options.output.c_str()) != 0) {
    std::fprintf(stderr, "cannot rename %s to %s\n", temporary.c_str(), context.options.output.c_str());
    std::exit(1);
  }
}

Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--quick") {
      options.quick = true;
    } else if ((argument == "-o" || argument == "--output") && i + 1 < argc) {
      options.output = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: moesim_calibrate_gpu [--quick] [-o measurements.json]\n"
                   "  --quick   tiny sizes, a smoke run of every benchmark\n");
      std::exit(argument == "--help" || argument == "-h" ? 0 : 2);
    }
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  Context context;
  context.options = parse_options(argc, argv);
  context.budget = budget_for(context.options);
  const auto started_clock = std::chrono::steady_clock::now();
  const std::string started = utc_now();
  CHECK_CUDA(cudaGetDeviceCount(&context.device_count));
  CHECK_CUDA(cudaSetDevice(0));
  CHECK_CUDA(cudaGetDeviceProperties(&context.properties, 0));
  std::fprintf(stderr, "[moesim_calibrate_gpu] %s, %d SMs, compute capability %d.%d, %d GPU(s)%s\n",
               context.properties.name, context.properties.multiProcessorCount, context.properties.major,
               context.properties.minor, context.device_count, context.options.quick ? ", quick run" : "");
  CHECK_CUDA(cudaStreamCreateWithFlags(&context.stream, cudaStreamNonBlocking));
  CHECK_CUBLAS(cublasCreate(&context.blas));
  CHECK_CUBLAS(cublasSetStream(context.blas, context.stream));
  CHECK_CUBLAS(cublasLtCreate(&context.blas_lt));
  context.lt_workspace = DeviceBuffer<unsigned char>(32u << 20);
  const std::string device = device_json(context);

  bench_launch(context);
  bench_memory(context);
  bench_gemm(context);
  bench_grouped_gemm(context);
  bench_attention_decode(context);
  bench_attention_prefill(context);
  bench_moe_layer(context);
  bench_all_to_all(context);
  CHECK_CUDA(cudaDeviceSynchronize());

  write_output(context, device, started);
  CHECK_CUBLAS(cublasLtDestroy(context.blas_lt));
  CHECK_CUBLAS(cublasDestroy(context.blas));
  CHECK_CUDA(cudaStreamDestroy(context.stream));
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_clock).count();
  std::fprintf(stderr, "[moesim_calibrate_gpu] %zu samples in %.1f s -> %s\n", context.samples.size(),
               elapsed, context.options.output.c_str());
  return 0;
}
