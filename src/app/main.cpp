// stagewise: command-line entry. Parses the command, assembles config -> trainer, maps errors to
// exit codes (0 done, 2 bad input, 3 failure during the run). Holds no training logic.
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "config/TrainConfig.h"
#include "core/Error.h"
#include "train/Trainer.h"

namespace {

std::atomic<bool> g_stop{false};
void onSignal(int) { g_stop.store(true); }

const char* kUsage =
    "usage: stagewise train --config FILE [section.key=value ...] [--out DIR] [--resume DIR]\n"
    "       stagewise train --help      (lists every config key with its default)\n";

std::string hostName() {
  char h[256] = {0};
  gethostname(h, sizeof h - 1);
  return h;
}

int train(const std::vector<std::string>& args) {
  std::string config, out, resume;
  std::vector<std::string> overrides;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const std::string& flag) -> std::string {
      if (a.size() > flag.size() && a[flag.size()] == '=') return a.substr(flag.size() + 1);
      if (i + 1 >= args.size()) throw sw::ConfigError(flag + " needs a value");
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage << "\nconfig keys (INI [section] key = value, or section.key=value):\n"
                << sw::configHelp();
      return 0;
    } else if (a.rfind("--config", 0) == 0 || a == "-c") {
      config = value(a == "-c" ? "-c" : "--config");
    } else if (a.rfind("--out", 0) == 0) {
      out = value("--out");
    } else if (a.rfind("--resume", 0) == 0) {
      resume = value("--resume");
    } else if (a.find('=') != std::string::npos) {
      overrides.push_back(a);
    } else if (a.rfind("--", 0) == 0 && i + 1 < args.size()) {
      overrides.push_back(a + "=" + args[++i]);  // --section.key value
    } else {
      throw sw::ConfigError("unexpected argument '" + a + "'\n" + kUsage);
    }
  }
  sw::TrainConfig cfg;
  if (!resume.empty() && config.empty()) {
    const std::string path = resume + "/config.ini";
    std::ifstream f(path);
    if (!f) throw sw::InputError(resume + ": not a stagewise run directory (no config.ini)");
    std::stringstream ss;
    ss << f.rdbuf();
    cfg = sw::parseConfigText(ss.str(), path, overrides);
  } else {
    if (config.empty()) throw sw::ConfigError(std::string("--config FILE is required\n") + kUsage);
    cfg = sw::parseConfig(config, overrides);
  }
  if (out.empty()) {
    if (!resume.empty()) out = resume;
    else out = "runs/" + std::filesystem::path(config).stem().string();
  }
  sw::Trainer trainer(cfg, out, resume);
  trainer.prepare();  // all input validated here, before anything is written
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  sw::EvalResult r = trainer.run(&g_stop);
  if (trainer.stoppedBySignal()) {
    std::cerr << "stopped by signal; resume with: stagewise train --resume " << out << "\n";
    return 0;
  }
  std::cerr << "done: test accuracy " << 100.0 * r.acc << "%, run directory " << out << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string cmd = args[0];
  args.erase(args.begin());
  try {
    if (cmd == "train") return train(args);
    std::cerr << "stagewise: unknown command '" << cmd << "'\n" << kUsage;
    return 2;
  } catch (const sw::InputError& e) {
    std::cerr << "[rank 0/1 " << hostName() << "] error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "[rank 0/1 " << hostName() << "] failure: " << e.what() << "\n";
    return 3;
  }
}
