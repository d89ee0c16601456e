//! `--where 'JQ'`: a jq filter (run by jaq) that chooses the records a tool acts on.
//!
//! The filter is compiled once, before any input is read. A record is selected when the
//! filter's first output is truthy (neither `false` nor `null`); no output means not selected.

use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Native, RcIter};
use jaq_json::Val;

use crate::record::Record;

/// A compiled `--where` filter.
pub struct WhereFilter {
    filter: jaq_core::Filter<Native<Val>>,
}

impl WhereFilter {
    /// Compiles `code`; the error names the position and what was expected.
    pub fn compile(code: &str) -> Result<Self, String> {
        let loader = Loader::new(jaq_std::defs().chain(jaq_json::defs()));
        let arena = Arena::default();
        let program = File { code, path: () };
        let modules = loader.load(&arena, program).map_err(|errs| {
            let mut msgs = Vec::new();
            for (_file, err) in errs {
                match err {
                    load::Error::Io(items) => {
                        msgs.extend(items.into_iter().map(|(path, e)| format!("{path}: {e}")))
                    }
                    load::Error::Lex(items) => {
                        msgs.extend(items.into_iter().map(|(expect, at)| {
                            describe(code, at, &format!("expected {}", expect.as_str()))
                        }))
                    }
                    load::Error::Parse(items) => {
                        msgs.extend(items.into_iter().map(|(expect, at)| {
                            describe(code, at, &format!("expected {}", expect.as_str()))
                        }))
                    }
                }
            }
            format!("invalid --where filter: {}", msgs.join("; "))
        })?;
        let filter = Compiler::default()
            .with_funs(jaq_std::funs().chain(jaq_json::funs()))
            .compile(modules)
            .map_err(|errs| {
                let msgs: Vec<String> = errs
                    .into_iter()
                    .flat_map(|(_file, list)| list)
                    .map(|(name, undefined)| {
                        describe(code, name, &format!("undefined {}", undefined.as_str()))
                    })
                    .collect();
                format!("invalid --where filter: {}", msgs.join("; "))
            })?;
        Ok(Self { filter })
    }

    /// Whether the filter selects `record`; an error while running it is returned as a message.
    pub fn selects(&self, record: &Record) -> Result<bool, String> {
        let inputs = RcIter::new(core::iter::empty());
        let value = Val::from(serde_json::Value::Object(record.clone()));
        let mut out = self.filter.run((Ctx::new([], &inputs), value));
        match out.next() {
            None => Ok(false),
            Some(Ok(v)) => Ok(jaq_core::ValT::as_bool(&v)),
            Some(Err(e)) => Err(format!("--where filter failed: {e}")),
        }
    }
}

/// "at column N (`token`): what" for a slice `at` of `code`.
fn describe(code: &str, at: &str, what: &str) -> String {
    let span = load::span(code, at);
    let token = if at.is_empty() { "end of filter" } else { at };
    format!("{what} at column {} (`{token}`)", span.start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: serde_json::Value) -> Record {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn selects_by_truthiness() {
        let f = WhereFilter::compile(r#".tag == "v1""#).unwrap();
        assert!(f.selects(&rec(json!({"tag": "v1"}))).unwrap());
        assert!(!f.selects(&rec(json!({"tag": "v2"}))).unwrap());
        let f = WhereFilter::compile(".digest").unwrap();
        assert!(!f.selects(&rec(json!({"image": "x"}))).unwrap());
        assert!(f.selects(&rec(json!({"digest": "sha256:00"}))).unwrap());
        let f = WhereFilter::compile("empty").unwrap();
        assert!(!f.selects(&rec(json!({}))).unwrap());
        let f = WhereFilter::compile(r#".tags | any(startswith("release-"))"#).unwrap();
        assert!(f
            .selects(&rec(json!({"tags": ["a", "release-1"]})))
            .unwrap());
    }

    #[test]
    fn bad_filters_say_where() {
        let err = WhereFilter::compile(".a ==").err().unwrap();
        assert!(err.starts_with("invalid --where filter"), "{err}");
        assert!(err.contains("column"), "{err}");
        let err = WhereFilter::compile("nosuchfn(1)").err().unwrap();
        assert!(err.contains("undefined filter"), "{err}");
        assert!(err.contains("nosuchfn"), "{err}");
    }

    #[test]
    fn runtime_errors_are_reported() {
        let f = WhereFilter::compile(".a + 1").unwrap();
        assert!(f.selects(&rec(json!({"a": "text"}))).is_err());
    }
}
