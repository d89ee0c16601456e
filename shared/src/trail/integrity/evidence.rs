//! What the integrity check means for one image's verdict: the files its evidence came from,
//! their states, and the verdict they allow (fail closed: `trusted` needs every piece of
//! evidence `validated` or `service`, and no tampering anywhere in the trail read).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::digest::PublicKey;
use super::{check, check_json, Check, DigestRead, Gap, LogRead, Mode, Report, State};
use crate::trail::join::{Index, Joined, Verdict};

/// The check of the whole trail read, kept for every record.
#[derive(Debug, Default)]
pub struct Checked {
    pub mode: Mode,
    pub logs: Vec<LogRead>,
    pub report: Report,
    pub now: DateTime<Utc>,
}

/// Tampering lines shown in a reason before "and N more".
const SHOWN: usize = 3;

impl Checked {
    pub fn run(
        mode: Mode,
        logs: Vec<LogRead>,
        digests: &[DigestRead],
        keys: &HashMap<String, PublicKey>,
        keys_unavailable: &HashMap<String, String>,
        wanted: &dyn Fn(&str, &str) -> bool,
    ) -> Checked {
        let now = Utc::now();
        let report = check(&logs, digests, keys, keys_unavailable, now, wanted);
        Checked {
            mode,
            logs,
            report,
            now,
        }
    }

    /// Counts by state, for `trail.searched` and the stderr summary.
    pub fn summary_json(&self) -> Value {
        let mut counts = serde_json::Map::new();
        for s in [
            State::Validated,
            State::Pending,
            State::Unvalidated,
            State::Invalid,
        ] {
            let n = self.report.files.iter().filter(|c| c.state == s).count();
            counts.insert(s.as_str().into(), n.into());
        }
        json!({
            "mode": self.mode.as_str(),
            "log_files": counts,
            "digests_read": self.report.digests_read,
            "digests_authentic": self.report.digests_authentic,
            "tampering": self.report.tampering.len(),
        })
    }

    /// Lines for stderr: one summary, then every tampering finding (at most 20).
    pub fn stderr_lines(&self) -> Vec<String> {
        let s = self.summary_json();
        let c = &s["log_files"];
        let mut out = vec![format!(
            "integrity ({}): {} log files: {} validated, {} pending, {} unvalidated, {} invalid; \
             {} digests read, {} authentic",
            self.mode.as_str(),
            self.logs.len(),
            c["validated"],
            c["pending"],
            c["unvalidated"],
            c["invalid"],
            self.report.digests_read,
            self.report.digests_authentic
        )];
        for t in self.report.tampering.iter().take(20) {
            out.push(format!("TAMPERING: {t}"));
        }
        if self.report.tampering.len() > 20 {
            out.push(format!(
                "TAMPERING: {} more findings, in each record's trail.integrity.tampering",
                self.report.tampering.len() - 20
            ));
        }
        if self.mode == Mode::Advisory && c["unvalidated"].as_u64().unwrap_or(0) > 0 {
            out.push(format!(
                "ADVISORY MODE: {} log files are unvalidated; a `trusted` verdict may rest on them, \
                 and says so in trail.integrity",
                c["unvalidated"]
            ));
        }
        out
    }

    /// Writes every log file's check (one JSON line each, by file name), then one line per
    /// tampering finding (`{"tampering": ...}`) and per gap (`{"gap": ...}`).
    pub fn write_report(&self, path: &std::path::Path) -> std::io::Result<()> {
        let mut lines: Vec<String> = self
            .logs
            .iter()
            .zip(&self.report.files)
            .map(|(l, c)| check_json(l, c, self.now).to_string())
            .collect();
        lines.sort();
        lines.extend(
            self.report
                .tampering
                .iter()
                .map(|t| json!({ "tampering": t }).to_string()),
        );
        lines.extend(
            self.report
                .gaps
                .iter()
                .map(|g| json!({ "gap": gap_json(g) }).to_string()),
        );
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, lines.join("\n") + "\n")?;
        std::fs::rename(&tmp, path)
    }

    /// Judges one image: the worst state of its evidence limits its verdict. Returns
    /// `trail.integrity`.
    pub fn judge(&self, ix: &Index, joined: &mut Joined) -> Value {
        let mut files = BTreeSet::new();
        let mut service = false;
        let mut evidence = |i: usize| match ix.events[i].file {
            Some(f) => {
                files.insert(f as usize);
            }
            None => service = true,
        };
        joined.image_pushes.iter().for_each(|&i| evidence(i));
        joined.signature_pushes.iter().for_each(|&i| evidence(i));
        for s in &joined.signatures {
            s.sign.iter().for_each(|&i| evidence(i));
            s.candidates.iter().for_each(|&i| evidence(i));
            s.role.iter().for_each(|&i| evidence(i));
        }
        let mut checks: Vec<(&LogRead, &Check)> = files
            .iter()
            .filter_map(|&f| Some((self.logs.get(f)?, self.report.files.get(f)?)))
            .collect();
        // Files are read in any order: by name, so every run says the same.
        checks.sort_by(|a, b| a.0.origin.cmp(&b.0.origin));
        let worst = checks
            .iter()
            .map(|(_, c)| c.state)
            .max()
            .unwrap_or(if service {
                State::Service
            } else {
                State::Validated
            });
        let tampering = &self.report.tampering;
        let first = |state: State| {
            checks
                .iter()
                .find(|(_, c)| c.state == state)
                .map(|(l, c)| format!("{}: {}", l.origin, c.reason))
                .unwrap_or_default()
        };
        let mut advisory_trust = false;
        if joined.verdict == Verdict::Trusted {
            let (verdict, reason) = if !tampering.is_empty() {
                let more = match tampering.len() {
                    n if n > SHOWN => {
                        format!(" (and {} more, in trail.integrity.tampering)", n - SHOWN)
                    }
                    _ => String::new(),
                };
                (
                    Verdict::Untrusted,
                    Some(format!(
                        "the trail was tampered with, so no image can be trusted on it: {}{more}",
                        tampering[..tampering.len().min(SHOWN)].join("; ")
                    )),
                )
            } else if worst == State::Pending {
                (
                    Verdict::Pending,
                    Some(format!(
                        "every signature is explained, but by log files CloudTrail has not yet \
                         covered with a digest; wait and run again: {}",
                        first(State::Pending)
                    )),
                )
            } else if worst == State::Unvalidated && self.mode == Mode::Strict {
                (
                    Verdict::Unexplained,
                    Some(format!(
                        "every signature is explained, but the evidence is not validated by \
                         CloudTrail's digests, so it could have been forged: {}; turn on log file \
                         validation for the trail, or accept this with --integrity advisory",
                        first(State::Unvalidated)
                    )),
                )
            } else if worst == State::Unvalidated {
                advisory_trust = true;
                (
                    Verdict::Trusted,
                    Some(format!(
                        "ADVISORY: TRUSTED ON UNVALIDATED EVIDENCE (--integrity advisory): nothing \
                         proves these log files are the ones CloudTrail delivered: {}",
                        first(State::Unvalidated)
                    )),
                )
            } else {
                (Verdict::Trusted, None)
            };
            if verdict != Verdict::Trusted {
                joined.verdict = verdict;
                for sig in &mut joined.signatures {
                    if sig.verdict == Verdict::Trusted {
                        sig.verdict = verdict;
                    }
                }
            }
            if let Some(r) = reason {
                joined.reasons.insert(0, r);
            }
        }
        let mut out = json!({
            "mode": self.mode.as_str(),
            "state": worst.as_str(),
            "evidence": checks.iter().map(|(l, c)| check_json(l, c, self.now)).collect::<Vec<_>>(),
        });
        if service {
            out["service"] = "LookupEvents or CloudTrail Lake: read from CloudTrail itself".into();
        }
        if advisory_trust {
            out["advisory_trust"] = true.into();
        }
        if !tampering.is_empty() {
            out["tampering"] = json!(tampering);
        }
        if !self.report.gaps.is_empty() {
            out["gaps"] = self.report.gaps.iter().map(gap_json).collect();
        }
        out
    }
}

fn gap_json(g: &Gap) -> Value {
    json!({"folder": g.folder, "state": g.state.as_str(), "reason": g.reason,
           "from": g.from.map(fmt), "to": g.to.map(fmt)})
}

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
