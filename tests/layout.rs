//! The shape of the source tree, held by a test: no file of the engine or the app grows past
//! ~600 production lines (the CLI's `src/cli/main.rs` past 300), and the engine's top-level modules sit in
//! the layers ARCHITECTURE.md lists ([`LAYERS`]), each importing only its own layer and those
//! below, with no circle. `cargo test --test layout -- --nocapture` prints the line counts, the
//! layer table and the import graph it checked, and the longest functions, none past
//! [`MAX_FUNCTION_LINES`] (a longer one mixes concerns that read better split apart).
//!
//! Production lines are those before a file's test module; references are the `crate::module`
//! paths outside comments (a doc link is not an import).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

/// The engine's layers, from the bottom, as ARCHITECTURE.md states them: a module imports only
/// modules of its own layer or a lower one, and every top-level module is in exactly one.
const LAYERS: &[&[&str]] = &[
    &[
        "batch_norm",
        "model",
        "phash",
        "resample",
        "support",
        "tensor_files",
    ],
    &["augment", "eval"],
    &["data", "link", "model_files"],
    &["embed", "optim", "remote"],
    &["device", "explore", "method", "score"],
    &["serve", "train"],
    &["lab"],
];
const MAX_MAIN_LINES: usize = 300;

/// What is not a layer of the engine: the CLI binary's folder (a shell over the library) and the
/// library's root.
const BIN_MODULES: &[&str] = &["cli", "lib"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines a file ships: everything before its test module (the first `#[cfg(test)]` followed
/// by a `mod`), as the issue and the review count them.
fn production(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let end = (0..lines.len())
        .find(|&i| {
            lines[i].trim_start().starts_with("#[cfg(test)]")
                && lines[i + 1..]
                    .iter()
                    .find(|l| !l.trim().is_empty())
                    // `mod tests`, or `pub(super) mod tests` when a sibling's tests share helpers.
                    .is_some_and(|l| {
                        let l = l.trim_start();
                        l.starts_with("mod ") || (l.starts_with("pub") && l.contains(" mod "))
                    })
        })
        .unwrap_or(lines.len());
    lines[..end].to_vec()
}

/// Production code without comments, so doc links are not taken for imports.
fn code(text: &str) -> String {
    production(text)
        .into_iter()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each function of `lines` (a file's production lines) with its length in lines, from its `fn`
/// line to the line that closes its body. Braces are counted on lines without comments; a brace
/// inside a string literal would miscount, which the tree's code does not have at line ends.
fn function_lengths(lines: &[&str]) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(at) = trimmed.find("fn ") else {
            continue;
        };
        let before = &trimmed[..at];
        let is_item = before
            .split_whitespace()
            .all(|word| word.starts_with("pub") || ["async", "const", "unsafe"].contains(&word));
        if trimmed.starts_with("//") || !is_item {
            continue;
        }
        let name: String = trimmed[at + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut opened) = (0i32, false);
        for (offset, body_line) in lines[start..].iter().enumerate() {
            if body_line.trim_start().starts_with("//") {
                continue;
            }
            for c in body_line.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            // A declaration without a body (a trait's) ends at its `;`.
            if !opened && body_line.trim_end().ends_with(';') {
                break;
            }
            if opened && depth <= 0 {
                found.push((name.clone(), offset + 1));
                break;
            }
        }
    }
    found
}

fn sorted_files(root: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(root),
        &mut files,
    );
    files.sort();
    files
}

#[test]
fn no_file_passes_its_line_budget() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut over = Vec::new();
    for root in ["src", "shaders/src", "src-tauri/src"] {
        for file in sorted_files(root) {
            let text = fs::read_to_string(&file).unwrap();
            let lines = production(&text).len();
            let relative = file.strip_prefix(base).unwrap().display().to_string();
            let budget = if relative == "src/cli/main.rs" {
                MAX_MAIN_LINES
            } else {
                MAX_LINES
            };
            println!("{lines:5}  {relative}");
            if lines > budget {
                over.push(format!(
                    "{relative}: {lines} production lines (budget {budget})"
                ));
            }
        }
    }
    assert!(
        over.is_empty(),
        "files over their budget:\n{}",
        over.join("\n")
    );
}

/// Prints the longest functions of the engine and the app, the ones to split along their
/// concerns next; checks that the counter finds a function's end.
#[test]
fn the_longest_functions_are_listed() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for root in ["src", "shaders/src", "src-tauri/src"] {
        for file in sorted_files(root) {
            let text = fs::read_to_string(&file).unwrap();
            let relative = file.strip_prefix(base).unwrap().display().to_string();
            for (name, lines) in function_lengths(&production(&text)) {
                all.push((lines, format!("{relative}: {name}")));
            }
        }
    }
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    println!("the longest functions:");
    for (lines, name) in all.iter().take(15) {
        println!("{lines:5}  {name}");
    }
    let sample = [
        "pub fn a(x: u32) -> u32 {",
        "    if x > 1 {",
        "        x",
        "    } else { 0 }",
        "}",
        "fn b();",
    ];
    assert_eq!(function_lengths(&sample), [("a".to_owned(), 5)]);
    assert!(all.len() > 100, "the counter found {} functions", all.len());
}

/// The longest a function of the engine, the app or the shaders may be, from its `fn` line to
/// the line that closes its body: a longer one mixes concerns that read better split apart.
const MAX_FUNCTION_LINES: usize = 100;

/// No function of the files the longest-functions listing reads (the engine, the CLI, the app
/// and the shaders) passes [`MAX_FUNCTION_LINES`]; prints what it checked.
#[test]
fn no_function_passes_its_budget() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mut checked, mut longest, mut over) = (0, (0, String::new()), Vec::new());
    for root in ["src", "shaders/src", "src-tauri/src"] {
        for file in sorted_files(root) {
            let text = fs::read_to_string(&file).unwrap();
            let relative = file.strip_prefix(base).unwrap().display().to_string();
            for (name, lines) in function_lengths(&production(&text)) {
                let function = format!("{relative}: {name}");
                checked += 1;
                if lines > longest.0 {
                    longest = (lines, function.clone());
                }
                if lines > MAX_FUNCTION_LINES {
                    over.push(format!("{lines:5}  {function}"));
                }
            }
        }
    }
    println!(
        "function budget: {checked} functions within {MAX_FUNCTION_LINES} lines, the longest {} ({} lines)",
        longest.1, longest.0
    );
    assert!(
        over.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines, to split along their concerns:\n{}",
        over.join("\n")
    );
}

/// The first path segment after each `crate::` (and each item of `crate::{a, b::c}`).
fn referenced_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // Split the group at top-level commas only.
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(ident(&group[start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(after));
        }
        rest = after;
    }
    found.remove("");
    found
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sorted_files("src") {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if BIN_MODULES.contains(&top.as_str()) {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        let code = code(&text);
        let targets = graph.entry(top.clone()).or_default();
        targets.extend(referenced_modules(&code).into_iter().filter(|m| *m != top));
    }
    graph
}

/// A cycle through `start`, if there is one, as the modules along it.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(graph, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_engine_modules_import_in_one_direction() {
    let graph = import_graph();
    for (module, targets) in &graph {
        let targets: Vec<_> = targets.iter().map(String::as_str).collect();
        println!("{module:>14} -> {}", targets.join(", "));
    }
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|m| cycle_through(&graph, m))
        .map(|cycle| cycle.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn every_engine_module_imports_only_its_layer_and_those_below() {
    let graph = import_graph();
    let layer_of = |module: &str| LAYERS.iter().position(|layer| layer.contains(&module));
    for (depth, layer) in LAYERS.iter().enumerate() {
        println!("layer {depth}: {}", layer.join(", "));
    }
    let mut wrong = Vec::new();
    for (module, targets) in &graph {
        let Some(depth) = layer_of(module) else {
            wrong.push(format!("{module} is in no layer of LAYERS"));
            continue;
        };
        for target in targets {
            match layer_of(target) {
                Some(at) if at > depth => wrong.push(format!(
                    "{module} (layer {depth}) imports {target} (layer {at}), which is above it"
                )),
                _ => {}
            }
        }
    }
    for layer in LAYERS {
        for module in *layer {
            if !graph.contains_key(*module) {
                wrong.push(format!("{module} is in LAYERS but not in src/"));
            }
        }
    }
    assert!(wrong.is_empty(), "layers broken:\n{}", wrong.join("\n"));
}

#[test]
fn references_are_read_from_paths_and_groups() {
    let code = "use crate::{data::{self, X}, eval};\nlet a = crate::train::run();";
    let found: Vec<_> = referenced_modules(code).into_iter().collect();
    assert_eq!(found, ["data", "eval", "train"]);
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycle_through(&graph, "a").unwrap(), ["a", "b", "a"]);
    graph.get_mut("b").unwrap().clear();
    assert!(cycle_through(&graph, "a").is_none());
}
