//! Single-env steps per second of `LunarLander-v3` and `LunarLanderContinuous-v3` with random
//! actions, resets included: the workload `scripts/bench_lunar.py` times in gymnasium
//! (`cargo bench -p tars-envs --bench lunar`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tars_envs::{Action, Env, LunarLander, LunarLanderOptions, Rng};

/// Steps taken per measured iteration, so that episode resets are averaged in.
const N_STEPS: u64 = 1000;

/// Steps `env` `N_STEPS` times with actions from `action`, resetting on termination or at
/// gymnasium's time limit.
fn run(env: &mut LunarLander, episode_steps: &mut u32, mut action: impl FnMut() -> [f32; 2]) {
    let max_steps = env.spec().max_episode_steps;
    let discrete = env.spec().action_space.is_discrete();
    for _ in 0..N_STEPS {
        let values = action();
        let action = if discrete {
            Action::Discrete(values[0] as usize)
        } else {
            Action::Continuous(&values)
        };
        *episode_steps += 1;
        if env.step(action).terminated || *episode_steps == max_steps {
            env.reset(None);
            *episode_steps = 0;
        }
    }
}

fn bench_lunar(c: &mut Criterion) {
    let mut group = c.benchmark_group("lunar");
    group.throughput(Throughput::Elements(N_STEPS));
    let mut rng = Rng::new(1);

    let mut env = LunarLander::discrete(LunarLanderOptions::default()).unwrap();
    let mut episode_steps = 0;
    group.bench_function("LunarLander-v3/1", |b| {
        b.iter(|| run(&mut env, &mut episode_steps, || [rng.below(4) as f32, 0.0]))
    });

    let mut env = LunarLander::continuous(LunarLanderOptions::default()).unwrap();
    let mut episode_steps = 0;
    group.bench_function("LunarLanderContinuous-v3/1", |b| {
        b.iter(|| {
            run(&mut env, &mut episode_steps, || {
                [rng.uniform(-1.0, 1.0) as f32, rng.uniform(-1.0, 1.0) as f32]
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_lunar);
criterion_main!(benches);
