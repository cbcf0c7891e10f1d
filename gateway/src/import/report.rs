//! The report of an import: one CSV row per record that gave no message (rejected),
//! per subject the reader skipped, and per warning — with where, which field and why.
//! The file is created only when there is something to say.

use std::fs::File;
use std::path::{Path, PathBuf};

pub struct Report {
    path: Option<PathBuf>,
    writer: Option<csv::Writer<File>>,
    location_name: &'static str,
    rows: u64,
    error: Option<String>,
}

impl Report {
    /// A report written to `path` if there is anything to report.
    pub fn to_file(path: &Path) -> Report {
        Report { path: Some(path.to_path_buf()), writer: None, location_name: "location", rows: 0, error: None }
    }

    /// Rows are counted but written nowhere.
    pub fn discard() -> Report {
        Report { path: None, writer: None, location_name: "location", rows: 0, error: None }
    }

    pub(super) fn set_location_name(&mut self, name: &'static str) {
        self.location_name = name;
    }

    /// One row. `location` is the line, position or answer (per format); `record` names the
    /// record when there is no location (e.g. `notice 3010...`).
    pub(super) fn row(&mut self, kind: &str, location: Option<u64>, record: &str, field: &str, reason: &str) {
        self.rows += 1;
        if self.error.is_some() {
            return;
        }
        let Some(path) = &self.path else { return };
        if self.writer.is_none() {
            match File::create(path) {
                Ok(file) => {
                    let mut writer = csv::Writer::from_writer(file);
                    let header = ["kind", self.location_name, "record", "field", "reason"];
                    if let Err(e) = writer.write_record(header) {
                        self.error = Some(format!("cannot write the report {}: {e}", path.display()));
                        return;
                    }
                    self.writer = Some(writer);
                }
                Err(e) => {
                    self.error = Some(format!("cannot create the report {}: {e}", path.display()));
                    return;
                }
            }
        }
        let location = location.map(|l| l.to_string()).unwrap_or_default();
        if let Some(writer) = &mut self.writer {
            if let Err(e) = writer.write_record([kind, &location, record, field, reason]) {
                self.error = Some(format!("cannot write the report {}: {e}", path.display()));
            }
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes the file. `Ok(Some(path))` when a report was written, `Ok(None)` when there
    /// was nothing to report.
    pub fn finish(mut self) -> Result<Option<PathBuf>, String> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        match (self.writer.take(), self.path.take()) {
            (Some(mut writer), Some(path)) => {
                writer.flush().map_err(|e| format!("cannot write the report {}: {e}", path.display()))?;
                Ok(Some(path))
            }
            _ => Ok(None),
        }
    }
}
