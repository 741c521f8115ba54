//! AutoML studies over real HTTP, on real (quick-budget) PPO training: a study runs to
//! completion with every trial stored and a best; a stopped study keeps its finished trials;
//! the best trial becomes a HyperSync proposal; a study cut by a restart resumes to
//! completion; two servers on one PostgreSQL schema run a left-running study once; and every
//! bad request is a 422 that stores nothing.

mod common;

use common::{PgSchema, Server};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn post(server: &Server, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    server.call(Method::POST, token, path, Some(body)).await
}

async fn get(server: &Server, token: &str, path: &str) -> (StatusCode, Value) {
    server.call(Method::GET, token, path, None).await
}

/// A small PPO CartPole study on the quick budget, evaluated on few episodes.
fn ppo_study(n_trials: i64) -> Value {
    json!({"agent_type": "ppo", "n_trials": n_trials, "use_real_training": false,
        "n_eval_episodes": 3, "seed": 3, "sampler": "random", "pruner": "none", "workers": 1})
}

async fn start_study(server: &Server, token: &str, body: Value) -> String {
    let (status, created) = post(server, token, "/v1/optimize", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["study_id"].as_str().unwrap().to_string();
    assert_eq!(created["status_url"], format!("/v1/studies/{id}"));
    id
}

/// Polls a study until `done` holds for it (at most 10 minutes: training on a noisy machine).
async fn wait_for(server: &Server, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (status, study) = get(server, token, &format!("/v1/studies/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{study}");
        if done(&study) {
            return study;
        }
        assert!(
            Instant::now() < deadline,
            "study {id} still not there: {study}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn n_finished(study: &Value) -> usize {
    study["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] != "running")
        .count()
}

fn is_ended(study: &Value) -> bool {
    study["status"] != "running"
}

/// The best of the complete trials, checked against the study's `best`.
fn check_best(study: &Value) {
    let trials = study["trials"].as_array().unwrap();
    let best = trials
        .iter()
        .filter(|t| t["state"] == "complete")
        .max_by(|a, b| {
            a["value"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["value"].as_f64().unwrap())
        })
        .expect("a complete trial");
    assert_eq!(study["best"]["value"], best["value"], "{study}");
    let number = study["best"]["trial"].as_u64().unwrap() as usize;
    assert_eq!(study["best"]["params"], trials[number]["params"], "{study}");
    assert_eq!(trials[number]["value"], best["value"], "{study}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_study_completes_and_its_best_trial_becomes_a_proposal() {
    let server = Server::start("automl-complete", &[]).await;
    let admin = server.admin().await;
    let id = start_study(&server, &admin, ppo_study(4)).await;
    let study = wait_for(&server, &admin, &id, is_ended).await;

    assert_eq!(study["status"], "completed", "{study}");
    assert_eq!(study["agent_type"], "PPO");
    assert_eq!(study["request"]["environments"], json!(["CartPole-v1"]));
    assert_eq!(study["config"]["seed"], 3);
    let trials = study["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4, "{study}");
    for (idx, trial) in trials.iter().enumerate() {
        assert_eq!(trial["number"], idx);
        assert!(
            trial["params"]["learning_rate"].as_f64().is_some(),
            "{trial}"
        );
        assert!(trial["finished_at"].is_string(), "{trial}");
        if trial["state"] == "complete" {
            assert!(trial["value"].as_f64().is_some(), "{trial}");
            // Intermediate values were reported while training.
            assert!(!trial["intermediate_values"].as_object().unwrap().is_empty());
        } else {
            assert_eq!(trial["state"], "failed", "{trial}");
            assert!(trial["error"].is_string(), "{trial}");
        }
    }
    let progress = &study["progress"];
    assert_eq!(progress["n_trials"], 4);
    assert_eq!(progress["running"], 0);
    assert_eq!(progress["interrupted"], 0);
    assert_eq!(
        progress["complete"].as_u64().unwrap() + progress["failed"].as_u64().unwrap(),
        4,
        "{study}"
    );
    check_best(&study);

    let (status, listed) = get(&server, &admin, "/v1/studies?agent_type=ppo").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["best"], study["best"]);
    assert_eq!(listed[0]["progress"], study["progress"]);
    assert!(listed[0]["trials"].is_null(), "lists carry no trials");
    let (_, none) = get(&server, &admin, "/v1/studies?status=stopped").await;
    assert_eq!(none, json!([]));

    // The best trial becomes a proposal, evaluated before it can be applied.
    let (status, proposed) = post(
        &server,
        &admin,
        &format!("/v1/studies/{id}/propose"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{proposed}");
    assert_eq!(proposed["trial"], study["best"]["trial"]);
    let proposal_id = proposed["proposal_id"].as_str().unwrap();
    let (status, proposal) = get(&server, &admin, &format!("/v1/proposals/{proposal_id}")).await;
    assert_eq!(status, StatusCode::OK, "{proposal}");
    assert_eq!(proposal["agent_type"], "PPO");
    assert_eq!(
        proposal["request"]["evaluate_before_apply"], true,
        "{proposal}"
    );
    let hyperparameters = proposal["proposed_hyperparameters"].as_object().unwrap();
    let best = study["best"]["params"].as_object().unwrap();
    assert_eq!(
        hyperparameters.keys().collect::<Vec<_>>(),
        best.keys().collect::<Vec<_>>()
    );
    for (name, value) in best {
        if name == "batch_size" {
            // PPO's minibatch is cut to the rollout, as the trial trained it.
            assert!(
                hyperparameters[name].as_f64() <= value.as_f64(),
                "{proposal}"
            );
        } else {
            assert_eq!(&hyperparameters[name], value, "{name}: {proposal}");
        }
    }

    // Every finished trial is counted by state.
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("tars_automl_trials_total{state=\"complete\"}"),
        "{metrics}"
    );

    // A finished study cannot be stopped.
    let (status, body) = post(
        &server,
        &admin,
        &format!("/v1/studies/{id}/stop"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    server.stop().await;
}

/// Issue 11: each trial is a job; its worker stores the intermediate values and the study's
/// owner prunes from them, cancelling the job — the trial stops where it was pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trials_run_as_jobs_and_the_owner_prunes_them() {
    let server = Server::start("automl-prune", &[]).await;
    let admin = server.admin().await;
    let mut body = ppo_study(10);
    body["pruner"] = json!("median");
    let id = start_study(&server, &admin, body).await;
    let study = wait_for(&server, &admin, &id, is_ended).await;
    assert_eq!(study["status"], "completed", "{study}");
    let trials = study["trials"].as_array().unwrap();
    let last_step = |t: &Value| {
        t["intermediate_values"]
            .as_object()
            .unwrap()
            .keys()
            .map(|s| s.parse::<u64>().unwrap())
            .max()
            .unwrap_or(0)
    };
    let full = trials
        .iter()
        .filter(|t| t["state"] == "complete")
        .map(last_step)
        .max()
        .expect("a complete trial");
    let pruned: Vec<&Value> = trials.iter().filter(|t| t["state"] == "pruned").collect();
    assert!(
        !pruned.is_empty(),
        "the median pruner pruned nothing: {study}"
    );
    for trial in pruned {
        assert!(last_step(trial) < full, "pruned but trained on: {trial}");
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("tars_jobs_total{status=\"cancelled\",kind=\"trial\"}"),
        "pruned trials' jobs are cancelled: {metrics}"
    );
    assert!(
        metrics.contains("tars_jobs_total{status=\"succeeded\",kind=\"trial\"}"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_study_keeps_its_finished_trials() {
    let server = Server::start("automl-stop", &[]).await;
    let admin = server.admin().await;
    let id = start_study(&server, &admin, ppo_study(200)).await;
    wait_for(&server, &admin, &id, |s| n_finished(s) >= 1).await;

    let (status, stopping) = post(
        &server,
        &admin,
        &format!("/v1/studies/{id}/stop"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{stopping}");
    assert_eq!(stopping["stop_requested"], true);
    let study = wait_for(&server, &admin, &id, is_ended).await;
    assert_eq!(study["status"], "stopped", "{study}");
    assert_eq!(study["reason"], "stopped by admin");
    let trials = study["trials"].as_array().unwrap().clone();
    assert!(trials.len() < 200, "{study}");
    assert!(trials.iter().all(|t| t["state"] != "running"), "{study}");
    let n_complete = trials.iter().filter(|t| t["state"] == "complete").count();
    assert!(n_complete >= 1, "{study}");
    check_best(&study);
    // A trial cut by the stop says so.
    for trial in trials.iter().filter(|t| t["state"] == "failed") {
        assert!(
            trial["error"]
                .as_str()
                .unwrap()
                .contains("the study was stopped"),
            "{trial}"
        );
    }

    // Nothing runs or changes after it stopped.
    let (_, again) = get(&server, &admin, &format!("/v1/studies/{id}")).await;
    assert_eq!(again["trials"].as_array().unwrap(), &trials);
    server.stop().await;
}

/// A trial job whose trial is no longer running (failed behind its back here, as a server
/// that took the study over fails the trials it found half-done) stops at its next report
/// instead of training on for nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_job_whose_trial_was_ended_stops_at_its_next_report() {
    let server = Server::start("automl-orphan", &[]).await;
    let admin = server.admin().await;
    // One DQN update per step on the Zoo budget: many seconds between its 20 reports.
    let one = |value: Value| json!({"type": "categorical", "choices": [value]});
    let space = json!({"train_freq": one(json!(1)), "gradient_steps": one(json!(1)),
        "learning_starts": one(json!(0)), "batch_size": one(json!(64)),
        "net_arch": one(json!([256, 256]))});
    let body = json!({"agent_type": "dqn", "n_trials": 1, "use_real_training": true,
        "search_space": space, "n_eval_episodes": 3, "seed": 3, "sampler": "random",
        "pruner": "none", "workers": 1});
    let id = start_study(&server, &admin, body).await;
    let reported = |s: &Value| {
        s["trials"][0]["intermediate_values"]
            .as_object()
            .is_some_and(|values| !values.is_empty())
    };
    wait_for(&server, &admin, &id, reported).await;

    let url = format!("sqlite://{}/tars.db", server.dir.display());
    let store = tars_store::Store::connect(&url).await.unwrap();
    let study_id: uuid::Uuid = id.parse().unwrap();
    let mut trial = store.trial(study_id, 0).await.unwrap().unwrap();
    trial.state = "failed".into();
    trial.error = Some("failed by the test, as by a takeover".into());
    trial.finished_at = Some(chrono::Utc::now());
    store.upsert_trial(&trial).await.unwrap();

    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let (status, error) = loop {
        let (status, error): (String, Option<String>) =
            sqlx::query_as("SELECT status, error FROM eval_jobs WHERE kind = 'trial'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if status != "queued" && status != "running" {
            break (status, error);
        }
        assert!(
            Instant::now() < deadline,
            "the orphan trial job still {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, "cancelled", "{error:?}");
    let error = error.unwrap();
    assert!(
        error.contains("trial 0 of study") && error.contains("was already ended"),
        "{error}"
    );
    // The owner, alive in this test, sees the cancelled job and ends the study.
    let study = wait_for(&server, &admin, &id, is_ended).await;
    assert_eq!(study["trials"][0]["state"], "failed", "{study}");
    let reports = study["trials"][0]["intermediate_values"]
        .as_object()
        .unwrap();
    assert!(
        reports.len() < 20,
        "stopped before its last report: {study}"
    );
    pool.close().await;
    store.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_past_its_timeout_starts_no_new_trial() {
    let server = Server::start("automl-timeout", &[]).await;
    let admin = server.admin().await;
    let mut body = ppo_study(200);
    body["timeout_seconds"] = json!(1);
    let id = start_study(&server, &admin, body).await;
    let study = wait_for(&server, &admin, &id, is_ended).await;
    assert_eq!(study["status"], "completed", "{study}");
    assert_eq!(study["reason"], "timed out after 1 s");
    let trials = study["trials"].as_array().unwrap();
    assert!(!trials.is_empty() && trials.len() < 200, "{study}");
    // Running trials finish: none is cut by the timeout.
    assert!(
        trials
            .iter()
            .all(|t| t["state"] == "complete" || t["error"].is_string())
    );
    assert!(
        trials
            .iter()
            .all(|t| !t["error"].as_str().unwrap_or("").contains("stopped"))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_cut_by_a_restart_resumes_to_completion() {
    let server = Server::start("automl-restart", &[]).await;
    let admin = server.admin().await;
    let id = start_study(&server, &admin, ppo_study(4)).await;
    // Stop while trial 1 trains (it may just finish first; the checks below allow both).
    let before = wait_for(&server, &admin, &id, |s| {
        n_finished(s) >= 1 && s["progress"]["running"] == 1
    })
    .await;
    let dir = server.stop().await;
    let first = before["trials"][0].clone();
    assert_ne!(first["state"], "running", "{before}");

    let server = Server::start_in(dir, &[]).await;
    let admin = server.admin().await;
    let study = wait_for(&server, &admin, &id, is_ended).await;
    assert_eq!(study["status"], "completed", "{study}");
    let trials = study["trials"].as_array().unwrap();
    // The trial finished before the restart is kept as it was.
    assert_eq!(trials[0], first);
    let progress = &study["progress"];
    let counted = ["complete", "pruned", "failed"]
        .iter()
        .map(|state| progress[*state].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(counted, 4, "{study}");
    assert_eq!(progress["running"], 0);
    assert_eq!(
        trials.len() as u64,
        4 + progress["interrupted"].as_u64().unwrap()
    );
    // A trial cut by the restart was re-run with its parameters under a later number.
    for (idx, trial) in trials.iter().enumerate() {
        assert_eq!(trial["number"], idx);
        if trial["state"] == "failed" && trial["error"].as_str().unwrap().contains("restart") {
            assert!(
                trials[idx + 1..]
                    .iter()
                    .any(|t| t["params"] == trial["params"]),
                "{study}"
            );
        }
    }
    check_best(&study);
    server.stop().await;
}

/// Sets a study's owner and lease expiry (ms since the epoch) behind the servers' backs.
async fn set_lease(pool: &sqlx::PgPool, schema: &str, id: &str, owner: &str, until_ms: i64) {
    let sql = format!("UPDATE {schema}.studies SET owner = $1, lease_until_ms = $2 WHERE id = $3");
    let id: uuid::Uuid = id.parse().unwrap();
    let updated = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(until_ms)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1);
}

/// How many of `servers` took study `id` over, in total.
fn times_taken_over(servers: &[&Server], id: &str) -> usize {
    let id: uuid::Uuid = id.parse().unwrap();
    servers
        .iter()
        .map(|s| {
            let studies = &s.running.as_ref().unwrap().state.studies;
            studies.taken_over().iter().filter(|t| **t == id).count()
        })
        .sum()
}

/// Issue 7: a study is run by one server at a time. A first server leaves two studies
/// `running`: one as after a crash (its lease has ended), one still held by a live server.
/// Two servers then start at the same time on the same PostgreSQL schema: exactly one of them
/// resumes the first study, and it completes with each trial run once; neither touches the
/// held one until its lease ends, and then exactly one adopts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_run_a_left_running_study_once() {
    let Some(schema) = PgSchema::create("tars_lease").await else {
        return;
    };
    let tag = schema.id.clone();
    let database_url = schema.url();
    let admin_pool = schema.admin.clone();
    let schema_name = schema.name.clone();
    let extra = [
        ("database_url", database_url.as_str()),
        ("study_lease_seconds", "10"),
    ];

    let first = Server::start(&format!("lease-first-{tag}"), &extra).await;
    let admin = first.admin().await;
    let left = start_study(&first, &admin, ppo_study(3)).await;
    let held = start_study(&first, &admin, ppo_study(2)).await;
    first.stop().await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    set_lease(
        &admin_pool,
        &schema_name,
        &left,
        "crashed-server",
        now_ms - 1,
    )
    .await;
    set_lease(
        &admin_pool,
        &schema_name,
        &held,
        "live-server",
        now_ms + 3_600_000,
    )
    .await;

    let (name_b, name_c) = (format!("lease-b-{tag}"), format!("lease-c-{tag}"));
    let (b, c) = tokio::join!(
        Server::start(&name_b, &extra),
        Server::start(&name_c, &extra)
    );
    assert_eq!(
        times_taken_over(&[&b, &c], &left),
        1,
        "resumed by exactly one"
    );
    assert_eq!(
        times_taken_over(&[&b, &c], &held),
        0,
        "its lease still holds"
    );
    let admin = b.admin().await;
    let study = wait_for(&b, &admin, &left, is_ended).await;
    assert_eq!(study["status"], "completed", "{study}");
    let progress = &study["progress"];
    let counted: u64 = ["complete", "pruned", "failed"]
        .iter()
        .map(|state| progress[*state].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 3, "{study}");
    let winner = [&b, &c]
        .into_iter()
        .find(|s| times_taken_over(&[s], &left) == 1)
        .unwrap();
    let owner = winner
        .running
        .as_ref()
        .unwrap()
        .state
        .studies
        .owner()
        .to_string();
    let (_, listed) = get(&c, &c.admin().await, "/v1/studies?status=completed").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let store = &b.running.as_ref().unwrap().state.service.store;
    let stored = store.study(left.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.owner.as_deref(), Some(owner.as_str()));

    // The held study: untouched while its lease holds.
    let (_, untouched) = get(&b, &admin, &format!("/v1/studies/{held}")).await;
    assert_eq!(untouched["status"], "running", "{untouched}");
    assert_eq!(times_taken_over(&[&b, &c], &held), 0);
    // Its holder dies: one of the two adopts it once the lease has ended.
    set_lease(
        &admin_pool,
        &schema_name,
        &held,
        "live-server",
        chrono::Utc::now().timestamp_millis(),
    )
    .await;
    let study = wait_for(&b, &admin, &held, is_ended).await;
    assert_eq!(study["status"], "completed", "{study}");
    assert_eq!(
        times_taken_over(&[&b, &c], &held),
        1,
        "adopted by exactly one"
    );
    assert_eq!(times_taken_over(&[&b, &c], &left), 1);

    for dir in [b.stop().await, c.stop().await] {
        let _ = std::fs::remove_dir_all(dir);
    }
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_what_is_valid_and_store_nothing() {
    let server = Server::start("automl-bad", &[]).await;
    let admin = server.admin().await;
    let with = |field: &str, value: Value| {
        let mut body = ppo_study(4);
        body[field] = value;
        body
    };
    let space = |spec: Value| with("search_space", spec);
    let cases = [
        (
            with("n_trials", json!(0)),
            "expected an integer in [1, 10000]",
        ),
        (
            with("n_trials", json!(-3)),
            "expected an integer in [1, 10000]",
        ),
        (
            with("n_trials", json!(10_001)),
            "expected an integer in [1, 10000]",
        ),
        (
            space(
                json!({"learning_rate": {"type": "float", "low": 0.01, "high": 0.001, "log": true}}),
            ),
            "learning_rate: range",
        ),
        (
            space(json!({"gamma": {"type": "float", "low": 0.9, "high": 0.9}})),
            "give low < high",
        ),
        (
            space(
                json!({"learning_rate": {"type": "float", "low": 0.0, "high": 0.01, "log": true}}),
            ),
            "log scale needs low > 0",
        ),
        (
            space(json!({"clip_coef": {"type": "float", "low": 0.1, "high": 0.3}})),
            "clip_coef",
        ),
        (space(json!(["learning_rate"])), "expected a JSON object"),
        (space(json!({"no_such_param": null})), "cannot be removed"),
        (with("sampler", json!("cmaes")), "tpe, random or grid"),
        (
            with("pruner", json!("percentile")),
            "median, sh (successive halving), hyperband or none",
        ),
        (
            with("agent_type", json!("sac")),
            "valid: DQN, A2C, PPO, DDPG, TD3",
        ),
        (
            with("environments", json!(["NoSuchEnv-v0"])),
            "NoSuchEnv-v0",
        ),
        (with("workers", json!(0)), "expected an integer in [1, 64]"),
        (with("timeout_seconds", json!(0)), "timeout_seconds"),
        (with("n_eval_episodes", json!(0)), "n_eval_episodes"),
        (with("n_trails", json!(5)), "n_trails"),
        // Budgets: a space whose upper corner breaks the job budget is refused, not sampled,
        // and so is a study whose trials together break the study budget.
        (
            space(json!({"net_arch": {"type": "categorical", "choices": [[64], vec![4096; 64]]}})),
            "one trial of this study needs an estimated",
        ),
        (
            space(json!({"net_arch": {"type": "categorical", "choices": [[64], vec![4096; 64]]}})),
            "raise max_job_memory_bytes",
        ),
        (
            {
                let mut body = with("n_trials", json!(10_000));
                body["use_real_training"] = json!(true);
                body
            },
            "a study of 10000 trials needs an estimated 1,015,000,000 environment steps, over the budget of 200,000,000 environment steps; lower its size or raise max_study_env_steps",
        ),
    ];
    for (body, expected) in cases {
        let (status, error) = post(&server, &admin, "/v1/optimize", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{body}: '{message}' lacks '{expected}'"
        );
    }
    let (status, listed) = get(&server, &admin, "/v1/studies").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed, json!([]));

    let (status, _) = get(&server, &admin, "/v1/studies/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let missing = uuid_like();
    let (status, _) = post(
        &server,
        &admin,
        &format!("/v1/studies/{missing}/stop"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(
        &server,
        &admin,
        &format!("/v1/studies/{missing}/propose"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&server, &admin, "/v1/studies?status=paused").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Without a token nothing is started.
    let (status, _) = post(&server, "", "/v1/optimize", ppo_study(4)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

fn uuid_like() -> &'static str {
    "00000000-0000-4000-8000-000000000000"
}

/// One study cannot take the whole queue: with `max_queued_per_study` 2, a study asking for 8
/// workers never has more than 2 trials in flight, and it still finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_holds_at_most_its_share_of_the_queue() {
    let server = Server::start("automl-share", &[("max_queued_per_study", "2")]).await;
    let admin = server.admin().await;
    let mut body = ppo_study(6);
    body["workers"] = json!(8);
    let id = start_study(&server, &admin, body).await;
    let study = wait_for(&server, &admin, &id, |study| {
        let running = study["trials"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"] == "running")
            .count();
        assert!(running <= 2, "{running} trials in flight: {study}");
        is_ended(study)
    })
    .await;
    assert_eq!(n_finished(&study), 6, "{study}");
    server.stop().await;
}
