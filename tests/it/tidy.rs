//! Documentation rules as tests: every source file says what it is for, every top-level server
//! module is on ARCHITECTURE.md's map, and no test is skipped.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_has_a_doc_comment_and_nothing_is_ignored() {
    let mut files = Vec::new();
    for dir in ["server/src", "shared/src", "widget/src", "tests/it"] {
        rust_files(&root().join(dir), &mut files);
    }
    let ignore = ["#[", "ignore]"].concat();
    let should_panic = ["#[", "should_panic]"].concat();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let is_test_file = file.file_name().is_some_and(|n| n == "tests.rs");
        assert!(is_test_file || text.starts_with("//!"), "{} lacks a //! module doc", file.display());
        assert!(!text.contains(&ignore) && !text.contains(&should_panic), "{} skips a test", file.display());
    }
}

#[test]
fn architecture_map_names_every_server_module() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    for entry in std::fs::read_dir(root().join("server/src")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "main" || name == "lib" {
            continue;
        }
        assert!(
            map.contains(&format!("`{name}`")) || map.contains(&format!("`{name}/`")),
            "ARCHITECTURE.md does not map server module {name}"
        );
    }
}

/// The module a `crate::…` path names: the longest prefix of it that is a file under `server/src`.
fn module_of(src: &Path, segments: &[&str]) -> Option<String> {
    (1..=segments.len()).rev().find_map(|n| {
        let path = segments.iter().take(n).copied().collect::<Vec<_>>().join("/");
        [format!("{path}.rs"), format!("{path}/mod.rs")].into_iter().find(|f| src.join(f).is_file()).map(|_| path)
    })
}

/// Module → the modules its code names (`use crate::…`, `crate::…` paths, `super::…`).
fn import_graph(src: &Path) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = std::collections::BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap().with_extension("");
        let rel = rel.to_string_lossy().replace('\\', "/");
        let module = rel.strip_suffix("/mod").unwrap_or(&rel).to_owned();
        let parent = module.rsplit_once('/').map_or(String::new(), |(p, _)| p.to_owned());
        let text = std::fs::read_to_string(&file).unwrap();
        let mut deps = std::collections::BTreeSet::new();
        for (marker, base) in [("crate::", String::new()), ("super::", parent.clone())] {
            for (at, _) in text.match_indices(marker) {
                let rest = &text[at + marker.len()..];
                let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
                let mut segments: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
                segments.extend(rest[..end].split("::").filter(|s| !s.is_empty()));
                if let Some(dep) = module_of(src, &segments)
                    && dep != module
                {
                    deps.insert(dep);
                }
            }
        }
        // `AppState` is re-exported at the crate root: naming it is depending on `state`.
        if module != "state" && text.contains("AppState") {
            deps.insert("state".to_owned());
        }
        graph.insert(module, deps);
    }
    graph
}

/// `state` is the composition root: it builds the domain, and nothing it builds reaches back for
/// it (run: `cargo test -p latch-tests --test it tidy::`).
#[test]
fn no_import_cycle_runs_through_the_composition_root() {
    let graph = import_graph(&root().join("server/src"));
    let mut cycles = Vec::new();
    for start in graph.get("state").into_iter().flatten() {
        // Depth-first from each module `state` uses, looking for a way back to `state`.
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![vec![start.clone()]];
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            if last == "state" {
                cycles.push(format!("state -> {}", path.join(" -> ")));
                continue;
            }
            if !seen.insert(last.clone()) {
                continue;
            }
            for next in graph.get(last).into_iter().flatten() {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles through server/src/state.rs:\n{}", cycles.join("\n"));
}

/// The sandbox is the provider side: a bug in the client side's protocol code must not be
/// mirrored by the server it is tested against.
#[test]
fn the_sandbox_shares_no_code_with_the_client_side() {
    let graph = import_graph(&root().join("server/src"));
    for module in ["sandbox", "api/sandbox"] {
        let deps = graph.get(module).unwrap();
        assert!(!deps.iter().any(|d| d.starts_with("oauth")), "{module} uses the client side: {deps:?}");
    }
}
