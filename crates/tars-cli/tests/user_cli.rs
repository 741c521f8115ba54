//! `tars user add|list|passwd|remove` end to end on an embedded SQLite store in a fresh data
//! directory, and the errors that say what was wrong and what is valid.

use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A fresh data directory per test; no configuration leaks in from the machine.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("tars-user-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Sandbox { dir }
    }

    /// Runs `tars` with `env` set and `stdin` piped in.
    fn tars_with(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tars"));
        for (var, _) in std::env::vars() {
            if var.starts_with("TARS_") {
                command.env_remove(var);
            }
        }
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&self.dir)
            .env("TARS_DATA_DIR", self.dir.join("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tars runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok_with(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> String {
        let output = self.tars_with(args, env, stdin);
        assert!(
            output.status.success(),
            "tars {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[], "")
    }

    fn fails(&self, args: &[&str], message: &str) {
        let output = self.tars_with(args, &[], "");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "tars {args:?}: {stderr}");
        assert!(stderr.contains(message), "tars {args:?}: {stderr}");
    }

    fn users(&self) -> Vec<(String, String)> {
        let listed: Value = serde_json::from_str(&self.ok(&["user", "list", "--json"])).unwrap();
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|user| {
                assert!(user.get("password_hash").is_none(), "{user}");
                (
                    user["username"].as_str().unwrap().to_string(),
                    user["role"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pair(username: &str, role: &str) -> (String, String) {
    (username.to_string(), role.to_string())
}

#[test]
fn users_are_added_listed_repassworded_and_removed() {
    let sandbox = Sandbox::new("crud");
    assert!(
        sandbox
            .ok(&["user", "list"])
            .starts_with("no users yet; `tars serve` creates admin on its first start")
    );

    // A generated password is printed once.
    let added = sandbox.ok(&["user", "add", "carol", "--role", "operator"]);
    assert!(
        added.starts_with("added user carol (operator)\npassword: "),
        "{added}"
    );
    assert!(
        added.contains("change it with `tars user passwd carol`"),
        "{added}"
    );
    let password = added.lines().nth(1).unwrap()["password: ".len()..].to_string();
    assert_eq!(password.len(), 26);

    // From stdin, and from TARS_USER_PASSWORD: nothing printed but the confirmation.
    let added = sandbox.ok_with(
        &[
            "user",
            "add",
            "alice",
            "--role",
            "ADMIN",
            "--password-stdin",
        ],
        &[],
        "alice's long password\n",
    );
    assert_eq!(added, "added user alice (admin)\n");
    let added = sandbox.ok_with(
        &["user", "add", "bob", "--role", "viewer"],
        &[("TARS_USER_PASSWORD", "bob's long password")],
        "",
    );
    assert_eq!(added, "added user bob (viewer)\n");

    assert_eq!(
        sandbox.users(),
        [
            pair("alice", "admin"),
            pair("bob", "viewer"),
            pair("carol", "operator")
        ]
    );
    let table = sandbox.ok(&["user", "list"]);
    assert!(table.starts_with("user "), "{table}");
    assert!(
        table.contains("\nbob                      viewer  "),
        "{table}"
    );
    assert!(!table.contains("argon2"), "{table}");

    let changed = sandbox.ok_with(
        &["user", "passwd", "bob", "--password-stdin"],
        &[],
        "bob's new password\r\n",
    );
    assert_eq!(
        changed,
        "changed the password of bob; their sessions are ended\n"
    );
    let changed = sandbox.ok(&["user", "passwd", "bob"]);
    assert!(changed.contains("\npassword: "), "{changed}");

    assert_eq!(
        sandbox.ok(&["user", "remove", "carol"]),
        "removed user carol and their sessions\n"
    );
    assert_eq!(
        sandbox.users(),
        [pair("alice", "admin"), pair("bob", "viewer")]
    );
}

#[test]
fn mistakes_are_named_with_what_is_valid() {
    let sandbox = Sandbox::new("errors");
    sandbox.ok(&["user", "add", "dave", "--role", "viewer"]);
    sandbox.fails(
        &["user", "add", "dave", "--role", "admin"],
        "error: adding user dave: user 'dave' already exists; pick another name",
    );
    sandbox.fails(
        &["user", "add", "erin", "--role", "root"],
        "unknown role 'root'; valid roles: viewer, operator, admin",
    );
    sandbox.fails(
        &["user", "add", "not valid", "--role", "viewer"],
        "invalid username: 'not valid' is not a user name; use 1 to 64 characters from A-Z, a-z, 0-9, '_', '.' and '-'",
    );
    for args in [
        &["user", "remove", "nobody"][..],
        &["user", "passwd", "nobody"][..],
    ] {
        sandbox.fails(
            args,
            "unknown user 'nobody'; `tars user list` shows the users",
        );
    }
    let output = sandbox.tars_with(
        &[
            "user",
            "add",
            "frank",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        &[],
        "short\n",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("the password is 5 characters long; use at least 8")
    );
    let output = sandbox.tars_with(
        &[
            "user",
            "add",
            "frank",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        &[],
        "",
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--password-stdin read an empty line")
    );
    assert_eq!(sandbox.users(), [pair("dave", "viewer")]);
}
