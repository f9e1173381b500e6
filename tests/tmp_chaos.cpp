#include <cstdio>
#include <cmath>
#include <random>
#include "train/cpu_backend.h"
#include "train/epochs.h"
#include "data/dataset.h"
using namespace mnist;
double relerr(const std::vector<float>& a, const std::vector<float>& b){double n=0,d=0;for(size_t i=0;i<a.size();++i){n+=double(a[i]-b[i])*(a[i]-b[i]);d+=double(b[i])*b[i];}return std::sqrt(n/d);}
void run(int batch, float keep, int hidden, int steps, long first) {
  const MnistData data = make_fake_data(8);
  TrainConfig c; c.model = ModelKind::kMlp; c.hidden_units=hidden; c.batch_size = batch; c.keep_prob = keep; c.seed = 123;
  std::vector<TrainState> out;
  for (int variant = 0; variant < 2; ++variant) {
    std::vector<float> p = initial_parameters(make_layout(c.model, c.hidden_units), 9);
    std::mt19937 rng(variant);
    if (variant) for (auto& x : p) x = std::nextafter(x, (rng() & 1) ? 1.f : -1.f);
    CpuBackend b(c, data, p);
    TrainState s = b.state(); s.step = first; b.set_state(s);
    EpochFeeder f(b, c.seed, batch, data.train.count);
    for (int s = 0; s < steps; ++s) { f.before_step(); b.train_step(); }
    out.push_back(b.state());
  }
  std::printf("batch %d hidden %d: m relerr %.3g v relerr %.3g\n", batch, hidden, relerr(out[1].adam_m,out[0].adam_m), relerr(out[1].adam_v,out[0].adam_v));
}
int main() {
  run(128, 0.9f, 500, 3, 77); run(37, 0.8f, 3, 6, 0); run(64,0.9f,501,6,0); run(50,0.9f,1000,4,0); run(100,0.9f,500,8,0);
}
