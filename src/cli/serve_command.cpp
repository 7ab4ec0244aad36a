// tlm serve: a model or soft committee behind HTTP/JSON (cpp-httplib), with dynamic batching
// (tlm/serving.h), strict request checks, a bounded queue (503 with Retry-After), Prometheus
// metrics, a small page, and a drain on SIGTERM/SIGINT.
#include <httplib.h>
#include <omp.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "cli/commands.h"
#include "cli/connection_queue.h"
#include "cli/serve_metrics.h"
#include "cli/serve_page.h"
#include "cli/threads.h"
#include "tlm/check.h"
#include "tlm/device.h"
#include "tlm/serving.h"

namespace tlm::cli {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::atomic<int> g_serve_stop{0};
extern "C" void on_serve_signal(int sig) { g_serve_stop = sig; }

struct ServeArgs {
  std::vector<std::string> models;
  std::string host = "127.0.0.1", precision = "fp32", device = "cpu", members = "sequential";
  int port = 8080, threads = 0, max_batch = 32, http_threads = 32, max_waiting_connections = 256;
  double max_wait_ms = 2;
  int64_t max_queue = 256, max_texts = 64, max_text_bytes = 20000, max_body_bytes = 1 << 20;
};

// A request the server refuses: its status and what is wrong.
struct Refusal {
  int status;
  std::string message;
};

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Messages may quote a request's bytes (a parse error does): invalid UTF-8 is replaced, not thrown.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n", "application/json");
}

// The texts of a classification request, checked completely; a refusal names the field.
std::vector<std::string> parse_classify(const std::string& body, const ServeArgs& a, bool* members) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw Refusal{400, fmt::format("body: not JSON in UTF-8 ({})", e.what())};
  }
  if (!j.is_object()) throw Refusal{400, "body: expected a JSON object {\"texts\": [...]}"};
  for (const auto& [key, value] : j.items()) {
    if (key != "texts" && key != "members") throw Refusal{400, fmt::format("unknown key \"{}\"", key)};
  }
  if (!j.contains("texts")) throw Refusal{400, "\"texts\" is missing"};
  const json& texts = j["texts"];
  if (!texts.is_array())
    throw Refusal{400, fmt::format("\"texts\" must be an array of strings, got {}", texts.type_name())};
  if (texts.empty()) throw Refusal{400, "\"texts\" is empty"};
  if (static_cast<int64_t>(texts.size()) > a.max_texts) {
    throw Refusal{413, fmt::format("\"texts\" has {} texts, at most {} per request", texts.size(), a.max_texts)};
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (!texts[i].is_string())
      throw Refusal{400, fmt::format("texts[{}] is a {}, expected a string", i, texts[i].type_name())};
    out.push_back(texts[i].get<std::string>());
    if (static_cast<int64_t>(out.back().size()) > a.max_text_bytes) {
      throw Refusal{413, fmt::format("texts[{}] has {} bytes, at most {}", i, out.back().size(), a.max_text_bytes)};
    }
  }
  *members = false;
  if (j.contains("members")) {
    if (!j["members"].is_boolean()) throw Refusal{400, "\"members\" must be true or false"};
    *members = j["members"].get<bool>();
  }
  return out;
}

json probs_by_label(const std::vector<float>& p, const std::vector<std::string>& labels) {
  json out = json::object();
  for (size_t k = 0; k < labels.size(); ++k) out[labels[k]] = p[k];
  return out;
}

json describe_models(const ClassifierService& service, Precision precision) {
  json members = json::array();
  double flops = 0;
  int64_t params = 0;
  // FLOPs of one prediction of a text of the runs' max length: [CLS] + pieces + [SEP].
  const int len = service.committee().max_len();
  Batch b;
  b.offsets = {0, len};
  b.ids.assign(static_cast<size_t>(len), 0);
  for (size_t i = 0; i < service.members().size(); ++i) {
    const BertModel& m = *service.members()[i];
    const BertConfig& c = m.config();
    members.push_back({{"dir", service.committee().dirs()[i]},
                       {"layers", c.num_hidden_layers},
                       {"hidden", c.hidden_size},
                       {"heads", c.num_attention_heads},
                       {"params", m.num_params()},
                       {"flops_per_prediction_at_max_len", m.forward_flops(b)}});
    flops += m.forward_flops(b);
    params += m.num_params();
  }
  const ServingOptions& o = service.options();
  return {{"members", members},
          {"committee", service.members().size() > 1},
          {"labels", service.committee().labels()},
          {"vocab_size", service.committee().tokenizer().vocab().size()},
          {"max_len", len},
          {"precision", precision_name(precision)},
          {"params", params},
          {"flops_per_prediction_at_max_len", flops},
          {"batching", {{"max_batch", o.max_batch}, {"max_wait_ms", o.max_wait_ms}, {"max_queue", o.max_queue}}},
          {"members_run", o.mode == CommitteeMode::kConcurrent ? "side by side" : "one after another"}};
}

int run_serve(const ServeArgs& a) {
  set_threads(a.threads);
  InferenceFlags flags;
  flags.device = parse_device(a.device);
  std::string note;
  flags.precision = resolve_precision(parse_precision(a.precision), flags.device, &note);
  if (!note.empty()) fmt::print(stderr, "serve: {}\n", note);
  ServingOptions so;
  so.max_batch = a.max_batch;
  so.max_wait_ms = a.max_wait_ms;
  so.max_queue = a.max_queue;
  so.mode = a.members == "side-by-side" ? CommitteeMode::kConcurrent : CommitteeMode::kSequential;
  so.threads = omp_get_max_threads();  // --threads, else what OpenMP may use here (affinity, OMP_NUM_THREADS)
  TLM_CHECK(a.max_wait_ms <= 60000, "--max-wait-ms {} is over a minute", a.max_wait_ms);
  TLM_CHECK(a.max_texts <= a.max_queue, "--max-texts {} exceeds --max-queue {}: such a request could never be queued",
            a.max_texts, a.max_queue);
  ClassifierService service(a.models, flags, so);
  const std::vector<std::string>& labels = service.committee().labels();
  ServeMetrics metrics;

  httplib::Server server;
  server.set_payload_max_length(static_cast<size_t>(a.max_body_bytes));
  // SO_REUSEADDR only: the library's default adds SO_REUSEPORT, with which a second server on the
  // same port starts and silently takes half the traffic instead of being refused.
  // The listening socket, kept to stop taking connections on a signal (see the watcher below).
  std::atomic<int> listener{-1};
  server.set_socket_options([&listener](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listener = sock;  // the last socket tried is the one bound
  });
  // Connections beyond the HTTP threads wait in a bounded queue, then in the kernel's listen backlog.
  std::atomic<ConnectionQueue*> connections{nullptr};  // owned by the server while it listens
  server.new_task_queue = [&connections, &a] {
    auto* queue =
        new ConnectionQueue(static_cast<size_t>(a.http_threads), static_cast<size_t>(a.max_waiting_connections));
    connections = queue;
    return queue;
  };
  server.set_tcp_nodelay(true);  // a response's header and body writes must not wait on a delayed ACK
  server.set_keep_alive_timeout(2);
  server.set_read_timeout(5);
  // Counted by route, never by the raw path: a client's path would be an unbounded label set.
  server.set_logger([&](const httplib::Request& req, const httplib::Response& res) {
    static const std::set<std::string> routes = {"/v1/classify", "/v1/models", "/health", "/metrics", "/"};
    metrics.count(routes.count(req.path) ? req.path : "other", res.status);
  });
  // Before a body is read: only JSON, sent whole with its length, uncompressed, so the size limit
  // holds (a chunked, length-less or compressed body would be read or inflated past it).
  server.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (req.method != "POST") return httplib::Server::HandlerResponse::Unhandled;
    if (req.has_header("Transfer-Encoding") || !req.has_header("Content-Length")) {
      send_json(res, 411, {{"error", "send the body with a Content-Length (no chunked transfer)"}});
    } else if (req.has_header("Content-Encoding")) {
      send_json(res, 415, {{"error", "compressed bodies are not accepted"}});
    } else if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
      send_json(res, 415, {{"error", "Content-Type must be application/json"}});
    } else {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    return httplib::Server::HandlerResponse::Handled;
  });
  // Every error answer is JSON: routes set their own message, the rest (404, 413 of the body
  // limit, ...) get one here.
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string what = res.status == 404   ? fmt::format("no such path: {} {}", req.method, req.path)
                             : res.status == 413 ? "request body over the size limit"
                                                 : fmt::format("HTTP {}", res.status);
    send_json(res, res.status, {{"error", what}});
  });
  server.Post("/v1/classify", [&](const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    bool members = false;
    std::vector<std::string> texts;
    try {
      texts = parse_classify(req.body, a, &members);
    } catch (const Refusal& r) {
      send_json(res, r.status, {{"error", r.message}});
      return;
    }
    const size_t n = texts.size();
    auto pending = service.submit(std::move(texts));
    if (!pending) {
      res.set_header("Retry-After", "1");
      send_json(res, 503, {{"error", fmt::format("overloaded: the queue holds at most {} texts; retry", a.max_queue)}});
      return;
    }
    std::vector<TextAnswer> answers;
    try {
      answers = pending->get();
    } catch (const std::exception& e) {
      send_json(res, 500, {{"error", e.what()}});
      return;
    }
    json results = json::array();
    for (const TextAnswer& ans : answers) {
      const size_t best = std::max_element(ans.probs.begin(), ans.probs.end()) - ans.probs.begin();
      json r = {{"label", labels[best]}, {"probs", probs_by_label(ans.probs, labels)}};
      if (members) {
        r["members"] = json::array();
        for (const auto& p : ans.members) r["members"].push_back(probs_by_label(p, labels));
      }
      results.push_back(std::move(r));
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    metrics.observe_classify(seconds);
    send_json(res, 200, {{"results", results}, {"texts", n}, {"ms", seconds * 1e3}});
  });
  const json models = describe_models(service, flags.precision);
  server.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) { send_json(res, 200, models); });
  server.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"status", "ok"}, {"queued_texts", service.stats().queued_texts}});
  });
  server.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(service.stats(), connections.load() ? connections.load()->waiting() : 0),
                    "text/plain; version=0.0.4");
  });
  server.Get("/", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(serve_page_html(), "text/html; charset=utf-8");
  });

  const int port = a.port == 0 ? server.bind_to_any_port(a.host) : (server.bind_to_port(a.host, a.port) ? a.port : -1);
  TLM_CHECK(port > 0, "cannot listen on {}:{} (in use, or not an address of this machine)", a.host, a.port);
  // SIGTERM/SIGINT: stop taking connections, answer what was accepted, exit 0. The listening socket
  // is shut for reading (accept then fails and the listener loop ends) rather than server.stop():
  // stop() marks the server closed, and httplib then closes every connection still waiting for a
  // thread without reading it. Shut once: afterwards httplib closes the descriptor, and its number
  // may be reused.
  g_serve_stop = 0;
  std::signal(SIGTERM, on_serve_signal);
  std::signal(SIGINT, on_serve_signal);
  std::atomic<bool> listened_out{false};
  std::thread watcher([&] {
    while (!listened_out) {
      if (g_serve_stop != 0) {
        ::shutdown(listener.load(), SHUT_RD);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  fmt::print(stderr, "serve: {} model(s), labels {}; listening on http://{}:{}\n", a.models.size(),
             fmt::join(labels, ","), a.host, port);
  std::fflush(stderr);
  const bool listened = server.listen_after_bind();
  listened_out = true;
  watcher.join();
  service.drain();
  const ServingStats s = service.stats();
  fmt::print(stderr, "serve: stopped; {} texts answered in {} forward passes\n", s.answered_texts, s.forward_passes);
  return listened || g_serve_stop != 0 ? 0 : 1;
}

}  // namespace

void add_serve_command(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "serve a fine-tuned model or soft committee over HTTP/JSON");
  cmd->add_option("--model", a->models, "fine-tuned run folder (repeat for a soft committee)")->required();
  cmd->add_option("--host", a->host, "address to listen on (loopback by default)")->capture_default_str();
  cmd->add_option("--port", a->port, "port (0: any free one, printed)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--threads", a->threads, "compute threads (0: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-batch", a->max_batch, "texts per forward pass")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-wait-ms", a->max_wait_ms, "how long a batch's first text waits for others (0: no wait)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-queue", a->max_queue, "texts waiting at most; beyond, requests get 503")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-texts", a->max_texts, "texts per request at most (413 beyond)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-text-bytes", a->max_text_bytes, "bytes per text at most (413 beyond)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-body-bytes", a->max_body_bytes, "bytes per request body at most (413 beyond)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--http-threads", a->http_threads, "connections served at once")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-waiting-connections", a->max_waiting_connections,
                  "accepted connections waiting for an HTTP thread at most (beyond: the listen backlog)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--members", a->members, "committee members one after another (sequential) or side-by-side")
      ->capture_default_str()
      ->check(CLI::IsMember({"sequential", "side-by-side"}));
  cmd->add_option("--precision", a->precision, "fp32, bf16 or auto")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "auto"}));
  cmd->add_option("--device", a->device, "device: cpu, cuda or cuda:N")->capture_default_str();
  cmd->callback([a, exit_code] { *exit_code = run_serve(*a); });
}

}  // namespace tlm::cli
