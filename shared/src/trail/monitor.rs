//! `trail-for --key-usage --state FILE`: the monitor a transparency log has, for cron or a
//! scheduled CI job. Each run reports what is new since the last: `Sign` calls (orphans flagged),
//! failed attempts and integrity breaks, each once.
//!
//! The state file holds `reported_until`: every `Sign` and attempt up to that time has been
//! reported. A run reads the trail from one `--window` before it (so a `Sign` just before can
//! still pair with a push just after), validates it as every run does, and reports the events
//! after `reported_until` up to **one window before the end of what authentic digests cover**
//! (`covered_until`): later `Sign`s may still get their push, or their log file its digest, so
//! they wait for the next run. Integrity findings are reported once each (the state keeps their
//! hashes). The new state is written (atomically) only when the run read the whole trail; a
//! run that fails leaves it as it was, so the next run resumes from the same point.

use std::path::Path;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the monitor remembers between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MonitorState {
    /// Format version.
    pub sigtrail_monitor: u32,
    /// Every `Sign` and attempt up to this time has been reported.
    pub reported_until: Option<DateTime<Utc>>,
    /// SHA-256 (hex) of each integrity finding already reported.
    #[serde(default)]
    pub findings: Vec<String>,
    /// When this state was written.
    pub updated_at: Option<DateTime<Utc>>,
}

impl MonitorState {
    /// The state in `path`, or a fresh one when there is no file yet.
    pub fn read(path: &Path) -> Result<MonitorState, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                format!(
                    "--state {}: not a sigtrail monitor state ({e}); remove it to start over",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(MonitorState {
                sigtrail_monitor: 1,
                ..MonitorState::default()
            }),
            Err(e) => Err(format!("--state {}: {e}", path.display())),
        }
    }

    /// Writes the state (write, then rename: a crash leaves the old one whole).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())? + "\n";
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("--state {}: cannot write: {e}", path.display()))
    }

    /// Where this run starts reading: one window before what was reported; `since` only on
    /// the first run (however long the monitor was stopped, nothing after the checkpoint is
    /// skipped).
    pub fn read_from(
        &self,
        since: Option<DateTime<Utc>>,
        window: Duration,
    ) -> Option<DateTime<Utc>> {
        match self.reported_until {
            Some(r) => Some(r - window),
            None => since,
        }
    }

    /// The time span this run reports: after `reported_until` (or from `since` on the first
    /// run), up to one window before `covered_until`.
    pub fn span(
        &self,
        since: Option<DateTime<Utc>>,
        covered_until: DateTime<Utc>,
        window: Duration,
    ) -> (Option<DateTime<Utc>>, DateTime<Utc>) {
        let from = match self.reported_until {
            Some(r) => Some(r + Duration::seconds(1)),
            None => since,
        };
        let to = covered_until - window;
        (from, self.reported_until.map_or(to, |r| to.max(r)))
    }

    /// The findings not reported yet, and remembers them.
    pub fn new_findings(&mut self, findings: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for f in findings {
            let h = hex::encode(Sha256::digest(f.as_bytes()));
            if !self.findings.contains(&h) {
                self.findings.push(h);
                out.push(f.clone());
            }
        }
        out
    }
}

pub fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn spans_follow_on_and_findings_are_new_once() {
        let w = Duration::minutes(15);
        let mut s = MonitorState::default();
        let since = Some(t("2026-01-01T00:00:00Z"));
        assert_eq!(s.read_from(since, w), since);
        let (from, to) = s.span(since, t("2026-01-01T10:00:00Z"), w);
        assert_eq!((from, to), (since, t("2026-01-01T09:45:00Z")));
        s.reported_until = Some(to);
        assert_eq!(s.read_from(since, w), Some(t("2026-01-01T09:30:00Z")));
        // A later --since does not skip what came after the checkpoint.
        assert_eq!(
            s.read_from(Some(t("2026-01-05T00:00:00Z")), w),
            Some(t("2026-01-01T09:30:00Z"))
        );
        let (from, to) = s.span(since, t("2026-01-01T11:00:00Z"), w);
        assert_eq!(from, Some(t("2026-01-01T09:45:01Z")));
        assert_eq!(to, t("2026-01-01T10:45:00Z"));
        // Coverage that went backwards reports nothing new, and never rewinds.
        let (_, to) = s.span(since, t("2026-01-01T09:00:00Z"), w);
        assert_eq!(to, t("2026-01-01T09:45:00Z"));
        assert_eq!(s.new_findings(&["a".into(), "b".into()]), ["a", "b"]);
        assert_eq!(s.new_findings(&["b".into(), "c".into()]), ["c"]);
    }
}
