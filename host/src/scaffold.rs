//! `nukisashi module new NAME [--lang rust|python|js]`: a module folder that builds, passes
//! `nukisashi module check` and runs under `nukisashi dev` as written: the build file, a
//! manifest with every field explained, `dev.toml`, and a GET and a POST route that use
//! config and kv (with native tests for Rust, through the SDK's test platform).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Rust,
    Python,
    Js,
}

/// The SDK next to this host's sources (a checkout of the repository), if it is there.
pub fn default_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    sdk.join("Cargo.toml").exists().then(|| sdk.canonicalize().unwrap_or(sdk))
}

/// Names Cargo refuses for a package (Rust keywords, and `test`).
const RUST_RESERVED: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen", "test",
];

const MANIFEST: &str = include_str!("../templates/common/manifest.toml");

/// (path in the new folder, template) per language.
fn files(language: Language) -> &'static [(&'static str, &'static str)] {
    match language {
        Language::Rust => &[
            ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
            ("dev.toml", include_str!("../templates/rust/dev.toml")),
            (".gitignore", include_str!("../templates/rust/gitignore")),
        ],
        Language::Python => &[
            ("app.py", concat!("# Started from Nukisashi's Python guestbook example: make it yours.\n", include_str!("../../examples/guestbook-python/app.py"))),
            ("build.sh", include_str!("../templates/python/build.sh")),
            ("dev.toml", include_str!("../templates/python/dev.toml")),
            (".gitignore", include_str!("../templates/python/gitignore")),
        ],
        Language::Js => &[
            ("app.js", concat!("// Started from Nukisashi's JavaScript guestbook example: make it yours.\n", include_str!("../../examples/guestbook-js/app.js"))),
            ("build.sh", include_str!("../templates/js/build.sh")),
            ("dev.toml", include_str!("../templates/js/dev.toml")),
            (".gitignore", include_str!("../templates/js/gitignore")),
        ],
    }
}

/// Writes the module `name` into `dir` (which must not exist yet); returns what the vendor
/// does next, as lines to print.
pub fn new_module(dir: &Path, name: &str, language: Language, sdk: Option<&Path>) -> Result<Vec<String>> {
    if !crate::is_valid_module_id(name) {
        bail!("`{name}` cannot be a module id: use 1–55 lower-case letters, digits and `-`, e.g. `hello-town`");
    }
    if language == Language::Rust && (name.starts_with(|c: char| c.is_ascii_digit()) || RUST_RESERVED.contains(&name)) {
        bail!("`{name}` is a module id, but not a Rust package name (it starts with a digit or is reserved): choose one that starts with a letter, e.g. `town-{name}`");
    }
    if dir.exists() {
        bail!("{} already exists: choose another name or directory (nothing was written)", dir.display());
    }
    let sdk = match language {
        Language::Rust => Some(match sdk {
            Some(path) => path.canonicalize().with_context(|| format!("--sdk {}: no such directory (it is the `sdk` folder of a Nukisashi checkout)", path.display()))?,
            None => default_sdk().context("cannot find the Rust SDK next to this nukisashi build; pass --sdk PATH (the `sdk` folder of a Nukisashi checkout)")?,
        }),
        _ => None,
    };
    // Written in a sibling scratch folder and renamed into place: a failure leaves nothing.
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let scratch = tempfile::Builder::new().prefix(".nukisashi-new-").tempdir_in(parent).with_context(|| format!("cannot write in {}", parent.display()))?;
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &sdk.as_deref().map(|p| p.display().to_string().replace('\\', "/")).unwrap_or_default())
    };
    let mut written = vec![("manifest.toml", fill(MANIFEST))];
    written.extend(files(language).iter().map(|(path, template)| (*path, fill(template))));
    for (path, text) in &written {
        let path = scratch.path().join(path);
        std::fs::create_dir_all(path.parent().expect("inside the folder"))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    #[cfg(unix)]
    if language != Language::Rust {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(scratch.path().join("build.sh"), std::fs::Permissions::from_mode(0o755))?;
    }
    match language {
        // The versions the SDK is tested with, when the SDK is a checkout with its lock file.
        Language::Rust => {
            if let Some(lock) = sdk.as_deref().map(|s| s.join("../Cargo.lock")).filter(|l| l.exists()) {
                std::fs::copy(&lock, scratch.path().join("Cargo.lock")).with_context(|| format!("cannot copy {}", lock.display()))?;
            }
        }
        Language::Python => {
            crate::wit::write(&scratch.path().join("wit"), None)?;
        }
        Language::Js => {
            crate::wit::write(&scratch.path().join("wit"), Some("0.2.10"))?;
        }
    }
    std::fs::rename(scratch.path(), dir).with_context(|| format!("cannot move the new module into {}", dir.display()))?;
    // Moved: nothing is left for the scratch directory to clean up.
    let _ = scratch.keep();
    let build = match language {
        Language::Rust => "cargo build --target wasm32-wasip2 --release   (cargo test runs its tests natively)",
        Language::Python => "./build.sh   (needs componentize-py 0.25.1: pip install componentize-py==0.25.1)",
        Language::Js => "./build.sh   (needs componentize-js 0.23.0: npm install @bytecodealliance/componentize-js@0.23.0)",
    };
    Ok(vec![
        format!("created {} ({language:?} module `{name}`)", dir.display()),
        format!("  cd {}", dir.display()),
        format!("  {build}"),
        "  nukisashi module check      (what admission checks, before signing)".to_string(),
        "  nukisashi dev               (serves it locally and reloads on every build)".to_string(),
        "  edit manifest.toml: set `vendor` to your vendor id before publishing".to_string(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_gets_a_folder_whose_manifest_parses() {
        let base = tempfile::tempdir().unwrap();
        for language in [Language::Rust, Language::Python, Language::Js] {
            let dir = base.path().join(format!("{language:?}").to_lowercase());
            new_module(&dir, "hello-town", language, None).unwrap();
            let manifest = crate::catalog::manifest::Manifest::parse(&std::fs::read(dir.join("manifest.toml")).unwrap()).unwrap();
            assert_eq!(manifest.id, "hello-town");
            let folder = crate::dev::ModuleFolder::open(&dir).unwrap();
            assert_eq!(folder.config.get("title").map(String::as_str), Some("こんにちは"));
            assert!(!std::fs::read_to_string(dir.join("dev.toml")).unwrap().contains("{{"));
        }
        let cargo = std::fs::read_to_string(base.path().join("rust/Cargo.toml")).unwrap();
        assert!(cargo.contains("crate-type = [\"cdylib\"]") && !cargo.contains("{{"), "{cargo}");
        assert!(base.path().join("rust/Cargo.lock").exists());
        assert!(base.path().join("js/wit").is_dir() && base.path().join("python/wit").is_dir());
    }

    #[test]
    fn an_existing_folder_or_a_bad_name_is_refused_and_nothing_is_written() {
        let base = tempfile::tempdir().unwrap();
        let taken = base.path().join("taken");
        std::fs::create_dir(&taken).unwrap();
        let e = new_module(&taken, "taken", Language::Rust, None).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        let e = new_module(&base.path().join("Bad"), "Bad_Name", Language::Rust, None).unwrap_err();
        assert!(e.to_string().contains("cannot be a module id"), "{e}");
        let e = new_module(&base.path().join("9town"), "9town", Language::Rust, None).unwrap_err();
        assert!(e.to_string().contains("not a Rust package name"), "{e}");
        new_module(&base.path().join("9town"), "9town", Language::Python, None).unwrap();
        std::fs::remove_dir_all(base.path().join("9town")).unwrap();
        let left: Vec<_> = std::fs::read_dir(base.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("taken")]);
    }
}
