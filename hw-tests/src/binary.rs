//! Finding the io-gateway binary under test: `--binary`, else `$IO_GATEWAY_BIN`, else
//! `io-gateway` next to this executable, else on `PATH`, else `/usr/bin/io-gateway`
//! (where the .deb installs it).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable naming the binary when `--binary` is not given.
pub const ENV_VAR: &str = "IO_GATEWAY_BIN";
const NAME: &str = "io-gateway";
const PACKAGED: &str = "/usr/bin/io-gateway";

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("{path} (from {origin}) is not an executable file")]
    NotExecutable { path: PathBuf, origin: &'static str },
    #[error("no io-gateway binary found (looked for ${ENV_VAR}, next to this program, on PATH and at {PACKAGED}); pass --binary PATH")]
    NotFound,
}

/// The binary to test; `explicit` is `--binary`.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, BinaryError> {
    locate_in(explicit, std::env::var_os(ENV_VAR), std::env::current_exe().ok(), std::env::var_os("PATH"))
}

fn locate_in(
    explicit: Option<&Path>,
    env: Option<OsString>,
    current_exe: Option<PathBuf>,
    path: Option<OsString>,
) -> Result<PathBuf, BinaryError> {
    let named = [(explicit.map(Path::to_path_buf), "--binary"), (env.map(PathBuf::from), ENV_VAR)];
    for (candidate, origin) in named {
        if let Some(path) = candidate.filter(|p| !p.as_os_str().is_empty()) {
            return if is_executable(&path) { Ok(path) } else { Err(BinaryError::NotExecutable { path, origin }) };
        }
    }
    let beside = current_exe.and_then(|exe| exe.parent().map(|dir| dir.join(NAME)));
    let on_path = path.iter().flat_map(std::env::split_paths).map(|dir| dir.join(NAME)).collect::<Vec<_>>();
    beside
        .into_iter()
        .chain(on_path)
        .chain([PathBuf::from(PACKAGED)])
        .find(|p| is_executable(p))
        .ok_or(BinaryError::NotFound)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn executable(dir: &Path, sub: &str) -> PathBuf {
        let path = dir.join(sub).join(NAME);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn prefers_the_flag_then_the_environment_then_beside_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let (flag, env) = (executable(dir.path(), "flag"), executable(dir.path(), "env"));
        let (beside, on_path) = (executable(dir.path(), "bin"), executable(dir.path(), "path"));
        let exe = Some(beside.with_file_name("io-gateway-hw-tests"));
        let path = Some(std::env::join_paths([dir.path().join("nothing"), dir.path().join("path")]).unwrap());
        let found = |f: Option<&Path>, e: Option<&Path>, x: Option<PathBuf>| {
            locate_in(f, e.map(|p| p.as_os_str().to_owned()), x, path.clone()).unwrap()
        };
        assert_eq!(found(Some(&flag), Some(&env), exe.clone()), flag);
        assert_eq!(found(None, Some(&env), exe.clone()), env);
        assert_eq!(found(None, None, exe), beside);
        assert_eq!(found(None, None, None), on_path);
    }

    #[test]
    fn a_named_binary_that_is_missing_is_an_error_not_a_fallback() {
        let missing = Path::new("/nonexistent/io-gateway");
        let err = locate_in(Some(missing), None, None, None).unwrap_err();
        assert!(matches!(err, BinaryError::NotExecutable { origin: "--binary", .. }), "{err}");
    }
}
