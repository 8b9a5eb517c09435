//! The command examples of the documentation are parsed with the real CLI
//! definition, so a renamed or removed flag fails `cargo test` instead of
//! leaving the docs wrong.
//!
//! Every fenced code block of `README.md`, `README.zh-CN.md` and
//! `docs/**/*.md` is read; a line (joined with the next ones while it ends
//! in `\`) is split as a shell would (`shell-words`: quotes, escapes,
//! trailing `# comments`), cut at `|`, `&&`, `||`, `;` and `&`, stripped of
//! redirections (`2>&1`, `> out.txt`), and each piece that invokes the tool
//! is parsed with `Cli::try_parse_from`. A piece invokes the tool when, after
//! a console prompt (`$ `), environment assignments (`RUST_LOG=debug`) and
//! wrappers (`sudo`, `env`, `nice`, `timeout D`, `taskset -c CPUS`), it runs
//! `xiaozhi-fleet` (any path ending in it, e.g. `./target/release/xiaozhi-fleet`)
//! or `cargo run [--release] [-- ARGS]`. A word holding a glob (`shard-*.json`)
//! stands for two of its matches. Fleet files named by an example under
//! `fleets/`, `docs/` or `deploy/` must exist.

use crate::cli::Cli;
use clap::Parser;
use std::path::{Path, PathBuf};

/// One tool invocation found in a markdown file.
#[derive(Debug)]
struct Example {
    /// `file:line` of the line the command starts on.
    at: String,
    /// The arguments after the program name.
    args: Vec<String>,
}

/// Info strings of fenced blocks that hold no shell commands.
const NOT_SHELL: &[&str] = &["toml", "yaml", "yml", "json", "rust", "python", "promql", "ini", "html"];

/// Commands in the fenced code blocks of `text` (`name` labels them).
fn extract(name: &str, text: &str) -> Result<Vec<Example>, String> {
    let mut examples = Vec::new();
    let mut fence: Option<(String, bool)> = None; // (marker, holds shell)
    let mut pending: Option<(usize, String)> = None; // a line continued with `\`
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = raw.trim_start();
        match &fence {
            None => {
                if let Some(marker) = fence_marker(trimmed) {
                    let info = trimmed[marker.len()..].trim().to_lowercase();
                    let lang = info.split_whitespace().next().unwrap_or("");
                    fence = Some((marker, !NOT_SHELL.contains(&lang)));
                }
                continue;
            }
            Some((marker, shell)) => {
                if trimmed.starts_with(marker.as_str()) && trimmed.trim_end().chars().all(|c| c == '`' || c == '~') {
                    if let Some((start, _)) = pending.take() {
                        return Err(format!(
                            "{name}:{start}: a command continued with `\\` runs into the end of its code block"
                        ));
                    }
                    fence = None;
                    continue;
                }
                if !shell {
                    continue;
                }
            }
        }
        let body = raw.trim();
        if pending.is_none() && !body.contains("xiaozhi-fleet") && !body.contains("cargo run") {
            continue; // output, or another program
        }
        let (start, mut command) = match pending.take() {
            Some((start, so_far)) => (start, so_far + " "),
            None => (line_no, String::new()),
        };
        if let Some(continued) = body.strip_suffix('\\') {
            command.push_str(continued);
            pending = Some((start, command));
            continue;
        }
        command.push_str(body);
        let at = format!("{name}:{start}");
        let words = shell_words::split(&command)
            .map_err(|e| format!("{at}: cannot split `{command}` as a shell would: {e}"))?;
        for piece in pieces(words) {
            if let Some(args) = invocation(&piece) {
                examples.push(Example { at: at.clone(), args });
            }
        }
    }
    if fence.is_some() {
        return Err(format!("{name}: a code block is never closed"));
    }
    Ok(examples)
}

/// The fence that opens a code block on this (left-trimmed) line, if any.
fn fence_marker(line: &str) -> Option<String> {
    for c in ['`', '~'] {
        let n = line.chars().take_while(|&x| x == c).count();
        if n >= 3 {
            return Some(std::iter::repeat_n(c, n).collect());
        }
    }
    None
}

/// The simple commands of a split line: cut at the shell's list and pipe
/// operators, redirections removed.
fn pieces(words: Vec<String>) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new()];
    let mut skip_next = false;
    for w in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        if matches!(w.as_str(), "|" | "||" | "&&" | ";" | "&") {
            out.push(Vec::new());
            continue;
        }
        let digits = w.trim_start_matches(|c: char| c.is_ascii_digit());
        if digits.starts_with('>') || digits.starts_with('<') {
            // `>` or `2>` alone takes the next word as its target; `2>&1`, `>out` do not.
            skip_next = matches!(digits, ">" | ">>" | "<");
            continue;
        }
        out.last_mut().expect("never empty").push(w);
    }
    out.retain(|p| !p.is_empty());
    out
}

/// The tool's arguments if this simple command runs the tool.
fn invocation(words: &[String]) -> Option<Vec<String>> {
    let mut rest = words;
    if rest.first().is_some_and(|w| w == "$") {
        rest = &rest[1..];
    }
    loop {
        let first = rest.first()?;
        if is_assignment(first) || matches!(first.as_str(), "sudo" | "env" | "nice" | "exec") {
            rest = &rest[1..];
        } else if first == "timeout" && rest.len() > 1 {
            rest = &rest[2..];
        } else if first == "taskset" {
            // taskset [-c] CPUS command...
            let skip = if rest.get(1).is_some_and(|w| w.starts_with('-')) {
                3
            } else {
                2
            };
            rest = rest.get(skip..)?;
        } else {
            break;
        }
    }
    let program = rest.first()?;
    if program == "xiaozhi-fleet" || program.ends_with("/xiaozhi-fleet") {
        return Some(expand_globs(&rest[1..]));
    }
    if program == "cargo" && rest.get(1).is_some_and(|w| w == "run") {
        return Some(match rest.iter().position(|w| w == "--") {
            Some(dash) => expand_globs(&rest[dash + 1..]),
            None => Vec::new(),
        });
    }
    None
}

/// `NAME=value` before a command.
fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

/// A glob stands for several files: two of them, enough for `merge`.
fn expand_globs(args: &[String]) -> Vec<String> {
    args.iter()
        .flat_map(|a| {
            if a.contains('*') && !a.starts_with('-') {
                vec![a.replacen('*', "0", 1), a.replacen('*', "1", 1)]
            } else {
                vec![a.clone()]
            }
        })
        .collect()
}

/// Problems with one example: clap's error, or a fleet file that is missing.
fn check(example: &Example, root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let argv = std::iter::once("xiaozhi-fleet".to_string()).chain(example.args.iter().cloned());
    if let Err(e) = Cli::try_parse_from(argv) {
        // --help and --version are answers, not errors.
        if !matches!(
            e.kind(),
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
        ) {
            let msg = e.render().to_string();
            let msg = msg
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" / ");
            problems.push(format!(
                "{}: `xiaozhi-fleet {}`: {msg}",
                example.at,
                example.args.join(" ")
            ));
        }
    }
    for arg in &example.args {
        let shipped = ["fleets/", "docs/", "deploy/"].iter().any(|d| arg.starts_with(d));
        if shipped && arg.ends_with(".toml") && !root.join(arg).is_file() {
            problems.push(format!("{}: `{arg}` does not exist", example.at));
        }
    }
    problems
}

/// README.md, README.zh-CN.md and every markdown file under docs/.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md"), root.join("README.zh-CN.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "md") {
                files.push(path);
            }
        }
    }
    files
}

/// Fewer examples than this means the extractor lost them.
const MIN_EXAMPLES: usize = 100;

#[test]
fn every_documented_command_parses_with_the_real_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    let mut problems = Vec::new();
    let mut per_file = Vec::new();
    for path in markdown_files(root) {
        let name = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        match extract(&name, &text) {
            Ok(examples) => {
                total += examples.len();
                per_file.push((name, examples.len()));
                for example in &examples {
                    problems.extend(check(example, root));
                }
            }
            Err(e) => problems.push(e),
        }
    }
    println!("{total} command examples checked: {per_file:?}");
    assert!(
        problems.is_empty(),
        "{} documented command(s) are wrong:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        total >= MIN_EXAMPLES,
        "only {total} command examples found (expected at least {MIN_EXAMPLES}): {per_file:?}"
    );
    for (name, n) in &per_file {
        let guide = name.starts_with("README") || (name.starts_with("docs") && !name.ends_with("README.md"));
        assert!(!guide || *n > 0, "{name}: no command example found: {per_file:?}");
    }
}

#[test]
fn a_renamed_flag_is_caught_with_file_and_line() {
    let doc = "Intro.\n\n```sh\nxiaozhi-fleet run --devices 3   # fine\nxiaozhi-fleet run --devicez 3\n```\n";
    let examples = extract("doc.md", doc).expect("extract");
    assert_eq!(examples.len(), 2);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(check(&examples[0], root).is_empty());
    let problems = check(&examples[1], root);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("doc.md:5: "), "{}", problems[0]);
    assert!(problems[0].contains("--devicez"), "{}", problems[0]);
}

#[test]
fn continuations_prefixes_comments_and_quotes_are_handled() {
    let doc = r#"
   ```bash
   $ RUST_LOG=debug xiaozhi-fleet run --devices 2 2>&1 | grep connecting
   cargo run --release        # the default fleet
   cargo run --release -- capacity fleets/capacity-mock.toml \
       --slo 'first_audio.p95<=1.5s' --start 4   # a comment
   sudo taskset -c 0 ./target/release/xiaozhi-fleet --threads 1 --speakers 30 > out.txt
   xiaozhi-fleet merge /reports/shard-*.json -o all.json && echo done
   scripts/render-report.sh r.html r.png
   ```

```toml
# xiaozhi-fleet run --no-such-flag (a comment in a fleet file: not a command)
```
"#;
    let examples = extract("doc.md", doc).expect("extract");
    let args: Vec<String> = examples
        .iter()
        .map(|e| format!("{} {}", e.at, e.args.join(" ")))
        .collect();
    assert_eq!(
        args,
        [
            "doc.md:3 run --devices 2",
            "doc.md:4 ",
            "doc.md:5 capacity fleets/capacity-mock.toml --slo first_audio.p95<=1.5s --start 4",
            "doc.md:7 --threads 1 --speakers 30",
            "doc.md:8 merge /reports/shard-0.json /reports/shard-1.json -o all.json",
        ]
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for e in &examples {
        assert!(check(e, root).is_empty(), "{:?}", check(e, root));
    }
}

#[test]
fn a_missing_fleet_file_is_caught() {
    let examples = extract("doc.md", "```sh\nxiaozhi-fleet run fleets/no-such-fleet.toml\n```\n").expect("extract");
    let problems = check(&examples[0], Path::new(env!("CARGO_MANIFEST_DIR")));
    assert_eq!(problems, ["doc.md:2: `fleets/no-such-fleet.toml` does not exist"]);
}

#[test]
fn an_unfinished_continuation_is_an_error() {
    let err = extract("doc.md", "```sh\nxiaozhi-fleet run \\\n```\n").expect_err("must fail");
    assert!(err.starts_with("doc.md:2: "), "{err}");
}
