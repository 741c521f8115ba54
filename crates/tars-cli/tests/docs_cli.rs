//! The documentation against the CLI it documents: every fenced block in README.md and docs/ is
//! closed, and every `tars …` command in their shell blocks names subcommands that exist and
//! flags those subcommands take (`tars help <subcommand>` lists them); the shell completions
//! and man pages the CLI generates cover its commands.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and every Markdown file under docs/ and deploy/.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    for dir in ["docs", "deploy"] {
        if root().join(dir).is_dir() {
            walk(&root().join(dir), &mut out);
        }
    }
    out
}

/// The shell blocks of `text`, or where its fences are broken.
fn shell_blocks(text: &str) -> Result<Vec<String>, String> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, bool, String)> = None;
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        let fence = line.trim_start();
        if !fence.starts_with("```") {
            if let Some((_, _, body)) = &mut open {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        }
        match open.take() {
            None => {
                let info = fence.trim_start_matches('`').trim();
                open = Some((
                    number,
                    matches!(info, "sh" | "bash" | "shell"),
                    String::new(),
                ));
            }
            Some((start, shell, body)) => {
                if fence.trim_end() != "```" {
                    return Err(format!(
                        "line {number}: the block opened at line {start} is closed by a fence \
                         with text after it ({line:?}); a closing fence is only the backticks"
                    ));
                }
                if shell {
                    blocks.push(body);
                }
            }
        }
    }
    match open {
        Some((start, _, _)) => Err(format!("the block opened at line {start} is never closed")),
        None => Ok(blocks),
    }
}

/// The words of a shell command line, quotes removed (enough for documentation examples).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (None, '#') if word.is_empty() && !any => break,
            // `a;b`, `a && b`, `a | b`, `a &`: each operator character a word of its own.
            (None, ';' | '|' | '&') => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
                words.push(c.to_string());
            }
            (None, c) => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

/// The `tars` invocations of a shell block: the arguments after `tars` (or after
/// `cargo run --release --`).
fn invocations(block: &str) -> Vec<Vec<String>> {
    let joined = block.replace("\\\n", " ");
    let mut found = Vec::new();
    for line in joined.lines() {
        let words = words(line);
        let mut command: Vec<String> = Vec::new();
        for word in words.into_iter().chain([";".to_string()]) {
            if [";", "|", "&"].contains(&word.as_str()) {
                let start = command
                    .iter()
                    .position(|w| w == "tars")
                    .map(|i| i + 1)
                    .or_else(|| {
                        command
                            .windows(4)
                            .position(|w| w == ["cargo", "run", "--release", "--"])
                            .map(|i| i + 4)
                    });
                // A command, not a mention (`$(tars …)` in prose-like lines is left out).
                if let Some(start) = start
                    && command[..start.saturating_sub(1)].iter().all(|w| {
                        w.contains('=')
                            || w == "cargo"
                            || w == "run"
                            || w.starts_with("--release")
                            || w == "--"
                    })
                {
                    found.push(command[start..].to_vec());
                }
                command.clear();
            } else {
                command.push(word);
            }
        }
    }
    found
}

fn help(path: &[String]) -> Option<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_tars"))
        .arg("help")
        .args(path)
        .output()
        .expect("tars runs");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn the_documents_fences_are_closed_and_their_tars_commands_parse() {
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        let name = document
            .strip_prefix(root())
            .unwrap_or(&document)
            .display()
            .to_string();
        let blocks = shell_blocks(&text).unwrap_or_else(|error| panic!("{name}: {error}"));
        for args in blocks.iter().flat_map(|b| invocations(b)) {
            // The subcommand path: the leading words that look like subcommands, as deep as
            // `tars help` knows them.
            let mut path: Vec<String> = args
                .iter()
                .take_while(|w| {
                    !w.is_empty()
                        && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                        && !w.starts_with('-')
                })
                .cloned()
                .collect();
            let text = loop {
                if let Some(text) = help(&path) {
                    break text;
                }
                assert!(
                    !path.is_empty(),
                    "{name}: `tars {}`: no such command",
                    args.join(" ")
                );
                path.pop();
            };
            assert!(
                !path.is_empty() || args.is_empty() || args[0].starts_with('-'),
                "{name}: `tars {}`: no such command",
                args.join(" ")
            );
            for flag in args.iter().filter(|w| w.starts_with("--") && w.len() > 2) {
                let flag = flag.split('=').next().unwrap();
                assert!(
                    text.contains(flag) || flag == "--help",
                    "{name}: `tars {}`: tars {} takes no {flag}",
                    args.join(" "),
                    path.join(" ")
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} commands found");
}

#[test]
fn broken_fences_and_commands_are_found() {
    assert!(shell_blocks("```sh\ntars env list\n").is_err());
    assert!(shell_blocks("```sh\ntars env list\n``` text\n").is_err());
    assert_eq!(
        shell_blocks("```sh\na\n```\n```\nb\n```\n").unwrap(),
        vec!["a\n"]
    );
    assert_eq!(
        invocations(
            "X=1 tars eval --agent 'a b' \\\n  --json   # note\ntars env list; echo tars\n"
        ),
        vec![
            vec!["eval", "--agent", "a b", "--json"],
            vec!["env", "list"],
        ]
    );
    assert_eq!(
        invocations("cargo run --release -- serve\n"),
        vec![vec!["serve"]]
    );
}

#[test]
fn completions_and_man_pages_cover_the_commands() {
    let tars = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_tars"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let bash = tars(&["completions", "bash"]);
    assert!(
        bash.contains("_tars()") && bash.contains("baseline"),
        "{bash}"
    );
    assert!(tars(&["completions", "zsh"]).contains("#compdef tars"));
    let man = tars(&["man"]);
    assert!(man.contains(".TH tars") && man.contains("serve"), "{man}");
    let dir = std::env::temp_dir().join(format!("tars-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    tars(&["man", "--out", dir.to_str().unwrap()]);
    for page in [
        "tars.1",
        "tars-eval.1",
        "tars-serve.1",
        "tars-baseline-promote.1",
    ] {
        assert!(dir.join(page).is_file(), "{page} missing");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
