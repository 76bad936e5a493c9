//! The user documentation holds together: the README stays a short front
//! page that links to every page of `docs/`, every relative link of the
//! README, ARCHITECTURE.md and `docs/` reaches an existing file and heading,
//! and the README's test command is the one CI runs.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The README's size limit, in bytes: the reference lives in `docs/`.
const README_MAX_BYTES: usize = 15 * 1024;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Markdown files checked: README.md, ARCHITECTURE.md and docs/*.md.
fn pages() -> Vec<PathBuf> {
    let root = root();
    let mut pages = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("a docs directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The lines of `text` outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The targets of the inline links `[text](target)` of `text`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

/// The anchors of the headings of `text`, as GitHub makes them: lower case,
/// punctuation other than `-` and `_` dropped, spaces turned into `-`.
fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .into_iter()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .flat_map(char::to_lowercase)
                .collect()
        })
        .collect()
}

#[test]
fn readme_is_short() {
    let size = fs::metadata(root().join("README.md")).unwrap().len() as usize;
    assert!(
        size <= README_MAX_BYTES,
        "README.md is {size} bytes, more than {README_MAX_BYTES}: move the detail to docs/"
    );
}

#[test]
fn readme_links_every_docs_page() {
    let readme = read(&root().join("README.md"));
    let linked: BTreeSet<String> = links(&readme).into_iter().collect();
    for page in pages()
        .iter()
        .filter(|p| p.parent().unwrap().ends_with("docs"))
    {
        let name = format!("docs/{}", page.file_name().unwrap().to_str().unwrap());
        assert!(linked.contains(&name), "README.md does not link to {name}");
    }
}

#[test]
fn relative_links_resolve() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = read(&page);
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", page.display()));
                continue;
            }
            if !anchor.is_empty() && !anchors(&read(&target)).contains(anchor) {
                broken.push(format!("{}: {link}: no such heading", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// CI runs one command, `scripts/test.sh`, and the README shows it as the
/// test command; the script runs the workspace tests, the Python tests and
/// the dashboard's browser test (installing Chromium when it is missing).
#[test]
fn readme_test_command_is_what_ci_runs() {
    let root = root();
    let readme = read(&root.join("README.md"));
    let ci = read(&root.join(".ci/run"));
    let commands: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| !l.starts_with("set ") && !l.starts_with("cd "))
        .collect();
    assert_eq!(
        commands,
        ["scripts/test.sh"],
        ".ci/run should run exactly scripts/test.sh"
    );
    assert!(
        readme
            .lines()
            .any(|l| l.trim_start().starts_with("scripts/test.sh")),
        "README.md does not show the test command of .ci/run: scripts/test.sh"
    );
    let script = read(&root.join("scripts/test.sh"));
    for step in [
        "cargo fmt --all --check",
        "cargo clippy --workspace --all-targets --locked -- -D warnings",
        "cargo test --workspace --locked",
        "maturin\" build",
        "-m pytest python/tests",
        "-m pytest tests/browser",
        "apt-get install -y -qq --no-install-recommends chromium chromium-driver",
    ] {
        assert!(script.contains(step), "scripts/test.sh does not run {step}");
    }
}

/// The `[dependencies]` of a crate's `Cargo.toml`: the keys of that table.
fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = read(manifest);
    let mut inside = false;
    let mut names = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && !line.is_empty() && !line.starts_with('#') {
            let end = line.find(['.', '=', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// ARCHITECTURE.md's crate table names each crate's real dependencies: the
/// code spans of its last column are exactly the `[dependencies]` of the
/// crate's `Cargo.toml`.
#[test]
fn architecture_lists_every_crates_dependencies() {
    let root = root();
    let text = read(&root.join("ARCHITECTURE.md"));
    let mut documented = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("| `encore-")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
        let dir = cells[1].trim().trim_matches('`').trim_end_matches('/');
        let listed: BTreeSet<String> = cells[cells.len() - 1]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        let actual = dependencies(&root.join(dir).join("Cargo.toml"));
        assert_eq!(
            listed, actual,
            "ARCHITECTURE.md's dependencies of {dir}/ differ from {dir}/Cargo.toml"
        );
        documented.insert(dir.to_string());
    }
    let workspace = read(&root.join("Cargo.toml"));
    let members_line = workspace
        .lines()
        .find(|l| l.starts_with("members"))
        .expect("a members line in Cargo.toml");
    let members: BTreeSet<String> = members_line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert_eq!(
        documented, members,
        "ARCHITECTURE.md's crate table against the workspace members"
    );
}
