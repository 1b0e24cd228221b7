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
