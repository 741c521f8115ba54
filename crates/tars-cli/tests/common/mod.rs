//! A fresh data directory per test and the `tars` binary run in it: what the CLI test files
//! share. No configuration leaks in from the machine.

#![allow(dead_code)] // Each test binary uses its own part.

pub mod fleet;

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A fresh data directory per test; no configuration leaks in from the machine.
pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("tars-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Sandbox { dir }
    }

    pub fn tars(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tars"));
        for (var, _) in std::env::vars() {
            if var.starts_with("TARS_") {
                command.env_remove(var);
            }
        }
        command
            .args(args)
            .current_dir(&self.dir)
            .env("TARS_DATA_DIR", self.dir.join("data"))
            .output()
            .expect("tars runs")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.tars(args);
        assert!(
            output.status.success(),
            "tars {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    pub fn fails(&self, args: &[&str], message: &str) {
        let output = self.tars(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "tars {args:?}: {stderr}");
        assert!(stderr.contains(message), "tars {args:?}: {stderr}");
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
