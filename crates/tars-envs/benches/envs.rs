//! Steps per second of every environment, single and vectorised, with random actions and
//! resets included (`cargo bench -p tars-envs --bench envs`; `tars bench envs` prints the same
//! beside gymnasium's figures).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tars_envs::{RandomActions, VecEnv, specs};

fn bench_envs(c: &mut Criterion) {
    for spec in specs() {
        for n_envs in [1usize, 1024] {
            let mut group = c.benchmark_group(format!("{}/{n_envs}", spec.id));
            group.throughput(Throughput::Elements(n_envs as u64));
            let mut vec_env = VecEnv::make(spec.id, n_envs, 0).unwrap();
            let mut actions = RandomActions::new(spec.action_space, n_envs, 1);
            group.bench_function("step", |b| b.iter(|| vec_env.step(actions.sample())));
            group.finish();
        }
    }
}

criterion_group!(benches, bench_envs);
criterion_main!(benches);
