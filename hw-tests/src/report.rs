//! The report every subcommand writes: the machine's facts, then one section per test
//! with its figures and checks, as Markdown; and the exit status the checks add up to.

use crate::machine::Machine;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Worth a look, but not a failure (e.g. a flush that looks too fast to be real).
    Warn,
    Fail,
    /// The run was too short to judge (e.g. memory growth in a one-minute soak).
    NotJudged,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
            Verdict::NotJudged => "not judged",
        }
    }

    /// `Pass` when `ok`, `Fail` otherwise.
    pub fn from_ok(ok: bool) -> Verdict {
        if ok {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
}

/// One test's results.
#[derive(Debug, Clone)]
pub struct Section {
    pub title: String,
    /// One or two sentences: what was measured, how.
    pub about: String,
    pub figures: Vec<(String, String)>,
    pub checks: Vec<Check>,
    /// Markdown blocks shown after the checks (tables of samples, lists of ids).
    pub details: Vec<String>,
    /// The test could not run to its end (as opposed to a check failing).
    pub errored: bool,
}

impl Section {
    pub fn new(title: impl Into<String>, about: impl Into<String>) -> Section {
        Section {
            title: title.into(),
            about: about.into(),
            figures: Vec::new(),
            checks: Vec::new(),
            details: Vec::new(),
            errored: false,
        }
    }

    /// A test that stopped with an error before it could judge anything.
    pub fn could_not_run(title: impl Into<String>, error: &dyn std::error::Error) -> Section {
        let mut detail = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            // Most messages here already end with their cause's text.
            let text = cause.to_string();
            if !detail.contains(&text) {
                let _ = write!(detail, ": {text}");
            }
            source = cause.source();
        }
        let mut section = Section::new(title, "The test could not run to its end.");
        section.check("ran to completion", Verdict::Fail, detail);
        section.errored = true;
        section
    }

    pub fn figure(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.figures.push((name.into(), value.into()));
    }

    pub fn check(&mut self, name: impl Into<String>, verdict: Verdict, detail: impl Into<String>) {
        self.checks.push(Check { name: name.into(), verdict, detail: detail.into() });
    }

    pub fn detail(&mut self, markdown: impl Into<String>) {
        self.details.push(markdown.into());
    }

    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.verdict == Verdict::Fail)
    }

    /// The value of a figure by name (for callers that combine sections, and for tests).
    pub fn figure_value(&self, name: &str) -> Option<&str> {
        self.figures.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write the report {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A whole report: the machine, the command, and the sections in the order they ran.
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub started: jiff::Timestamp,
    pub sections: Vec<Section>,
}

/// Exit status: every check passed (warnings allowed).
pub const EXIT_PASS: u8 = 0;
/// Exit status: a check failed.
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Exit status: a test could not run (missing binary, unwritable directory, …).
pub const EXIT_ERROR: u8 = 2;

impl Report {
    pub fn new(machine: Machine, command: String) -> Report {
        Report { machine, command, started: jiff::Timestamp::now(), sections: Vec::new() }
    }

    /// `hw-report-<host>-<UTC timestamp>.md` in the current directory.
    pub fn default_path(&self) -> PathBuf {
        let stamp = self.started.strftime("%Y%m%dT%H%M%SZ");
        let host: String =
            self.machine.host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        PathBuf::from(format!("hw-report-{host}-{stamp}.md"))
    }

    pub fn exit_code(&self) -> u8 {
        if self.sections.iter().any(|s| s.errored) {
            EXIT_ERROR
        } else if self.sections.iter().any(Section::failed) {
            EXIT_CHECK_FAILED
        } else {
            EXIT_PASS
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), ReportError> {
        std::fs::write(path, self.render()).map_err(|source| ReportError::Write { path: path.to_path_buf(), source })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let failed: usize =
            self.sections.iter().map(|s| s.checks.iter().filter(|c| c.verdict == Verdict::Fail).count()).sum();
        let result = match self.exit_code() {
            EXIT_PASS => "**PASS**: every check passed".to_string(),
            EXIT_CHECK_FAILED => format!("**FAIL**: {failed} check(s) failed"),
            _ => format!("**ERROR**: a test could not run ({failed} check(s) failed)"),
        };
        let _ = writeln!(out, "# io-gateway hardware test report\n");
        let _ = writeln!(out, "- host: `{}`", self.machine.host);
        let _ = writeln!(out, "- date: {}", self.started.strftime("%Y-%m-%d %H:%M:%S UTC"));
        let _ = writeln!(out, "- command: `{}`", self.command);
        let _ = writeln!(out, "- result: {result}\n");
        let _ = writeln!(out, "## Machine\n");
        table(&mut out, ["fact", "value"], self.machine.facts().iter().map(|(k, v)| [k.to_string(), v.clone()]));
        for section in &self.sections {
            let _ = writeln!(out, "## {}\n\n{}\n", section.title, section.about);
            if !section.figures.is_empty() {
                table(&mut out, ["figure", "value"], section.figures.iter().map(|(k, v)| [k.clone(), v.clone()]));
            }
            let rows =
                section.checks.iter().map(|c| [c.name.clone(), c.verdict.as_str().to_string(), c.detail.clone()]);
            table(&mut out, ["check", "result", "detail"], rows);
            for block in &section.details {
                let _ = writeln!(out, "{}\n", block.trim_end());
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    }
}

/// A Markdown table; `|` in cells is escaped.
pub fn table<const N: usize>(out: &mut String, head: [&str; N], rows: impl Iterator<Item = [String; N]>) {
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(out, "|{}", " --- |".repeat(N));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|").replace('\n', " ")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(sections: Vec<Section>) -> Report {
        let mut report = Report::new(Machine::for_tests(), "io-gateway-hw-tests storage".into());
        report.sections = sections;
        report
    }

    #[test]
    fn exit_code_is_the_worst_outcome() {
        let mut pass = Section::new("a", "b");
        pass.check("x", Verdict::Pass, "");
        pass.check("y", Verdict::Warn, "");
        assert_eq!(report(vec![pass.clone()]).exit_code(), EXIT_PASS);
        let mut fail = Section::new("c", "d");
        fail.check("z", Verdict::Fail, "");
        assert_eq!(report(vec![pass.clone(), fail.clone()]).exit_code(), EXIT_CHECK_FAILED);
        let error = std::io::Error::other("boom");
        let errored = Section::could_not_run("e", &error);
        assert_eq!(report(vec![pass, fail, errored]).exit_code(), EXIT_ERROR);
    }

    #[test]
    fn renders_figures_and_checks_as_tables_with_escaped_cells() {
        let mut section = Section::new("Storage", "What it measures.");
        section.figure("fsyncs per second", "812");
        section.check("a|b", Verdict::Fail, "too slow");
        let text = report(vec![section]).render();
        assert!(text.contains("| fsyncs per second | 812 |"), "{text}");
        assert!(text.contains("| a\\|b | FAIL | too slow |"), "{text}");
        assert!(text.contains("**FAIL**: 1 check(s) failed"), "{text}");
    }

    #[test]
    fn default_name_has_the_host_and_a_utc_timestamp() {
        let name = report(vec![]).default_path().display().to_string();
        assert!(name.starts_with("hw-report-test-host-") && name.ends_with("Z.md"), "{name}");
    }
}
