//! The shape of the source tree, as docs/architecture.md describes it: imports point one way
//! (no cycles among `src/`'s modules, nor among the files of one module), and no file grows a
//! second concept unnoticed (at most 700 lines before its tests).

use std::path::{Path, PathBuf};
use std::process::Command;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn graph(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/module-graph");
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .expect("python3 runs scripts/module-graph");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "import cycle ({args:?}):\n{text}");
    text
}

#[test]
fn imports_point_one_way() {
    assert!(graph(&[]).contains("no cycles"));
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let module = path.file_name().unwrap().to_str().unwrap().to_owned();
            assert!(graph(&["--sub", &module]).contains("no cycles"), "{module}");
        }
    }
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
fn no_source_file_is_over_700_lines_before_its_tests() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut long = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .count();
        if code > 700 {
            long.push(format!("{} ({code} lines)", path.display()));
        }
    }
    assert!(long.is_empty(), "split these: {long:?}");
}
