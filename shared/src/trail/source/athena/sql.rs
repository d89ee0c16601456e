//! The SQL `trail-for` sends to Athena (Trino's dialect) for the records in hand: text only, no
//! network. Snapshots of what it writes are kept in `shared/testdata/athena/` and reviewed.
//!
//! Three queries, each over the table AWS documents for CloudTrail (`docs/athena.md`), each
//! returning the same columns ([`COLUMNS`]), which [`super::rows`] turns back into CloudTrail
//! records for the same parser and join as every other source:
//! - **`sign`**: KMS `Sign` events (and failed attempts) by the key ARN in `resources` (never
//!   by `requestParameters.keyId`, which holds whatever the caller passed), or of every key;
//! - **`pushes`**: ECR `PutImage` of the images' digests, and every signature push (a
//!   `sha256-<hex>.sig` tag, or a manifest with a `subject`, as cosign v3's bundle referrers);
//! - **`roles`**: the role assumptions that returned the callers' access keys or assumed-role
//!   ARNs, once the first two have named them.
//!
//! Each is a superset of what the join keeps: the rows go through the same [`Interest`] as a
//! log file's events. Partitions are pruned by date (delivery time, so one day wider on each
//! side, as the file sources read day folders) and, for `sign` on the organization layout, by
//! the keys' accounts and regions; `eventtime` is then filtered exactly (CloudTrail writes it as
//! `YYYY-MM-DDTHH:MM:SSZ`, so text order is time order). Values are quoted by doubling `'`,
//! which is all a Trino string literal needs; they come from records and the trail, so nothing
//! in them can end a literal.

use chrono::{DateTime, Days, Utc};

use super::super::Range;
use crate::trail::interest::{Interest, Pushes, Roles};

/// How the table is partitioned (`--athena-layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// An organization trail's table: partitions `account`, `region` and `date` (`yyyy/MM/dd`),
    /// as AWS's sample for all accounts projects them.
    #[default]
    Org,
    /// AWS's partition-projection table of one account and region: one partition, `timestamp`
    /// (`yyyy/MM/dd`).
    Account,
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "org" => Ok(Layout::Org),
            "account" => Ok(Layout::Account),
            _ => Err(format!(
                "{s:?}: the layout is org (partitions account, region, date) or account \
                 (partition timestamp)"
            )),
        }
    }
}

impl Layout {
    fn date_column(self) -> &'static str {
        match self {
            Layout::Org => "e.\"date\"",
            Layout::Account => "e.\"timestamp\"",
        }
    }
}

/// Which engine the SQL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Athena over the trail bucket, partitioned as the layout says.
    Athena(Layout),
    /// CloudTrail Lake: one event data store, no partitions, `eventtime` a timestamp,
    /// `requestparameters` and `responseelements` `map<string,string>` (a nested object is a
    /// JSON string in the map), no `$path`.
    Lake,
}

/// One query: its name (`sign`, `pushes`, `roles`) and text.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub name: &'static str,
    pub sql: String,
}

/// The columns every query returns, in order: (expression, name). `r.` is the `resources`
/// entry that names the key (see [`query`]); the queries other than `sign` select NULL there.
pub const COLUMNS: &[(&str, &str)] = &[
    ("e.eventid", "eventid"),
    ("e.eventtime", "eventtime"),
    ("e.eventsource", "eventsource"),
    ("e.eventname", "eventname"),
    ("e.awsregion", "awsregion"),
    ("e.recipientaccountid", "recipientaccountid"),
    ("e.requestid", "requestid"),
    ("e.errorcode", "errorcode"),
    ("e.errormessage", "errormessage"),
    ("e.useridentity.type", "identity_type"),
    ("e.useridentity.principalid", "identity_principalid"),
    ("e.useridentity.arn", "identity_arn"),
    ("e.useridentity.accountid", "identity_accountid"),
    ("e.useridentity.accesskeyid", "identity_accesskeyid"),
    ("e.useridentity.username", "identity_username"),
    ("e.useridentity.invokedby", "identity_invokedby"),
    (
        "e.useridentity.identityprovider",
        "identity_identityprovider",
    ),
    (
        "e.useridentity.sessioncontext.sessionissuer.arn",
        "identity_issuer_arn",
    ),
    (
        "e.useridentity.sessioncontext.webidfederationdata.federatedprovider",
        "identity_federatedprovider",
    ),
    ("e.requestparameters", "requestparameters"),
    ("e.responseelements", "responseelements"),
    ("r.arn", "resource_arn"),
    ("r.type", "resource_type"),
    ("e.\"$path\"", "path"),
];

/// The expression for column `expr` of [`COLUMNS`] in `dialect`.
fn column(dialect: Dialect, expr: &'static str) -> &'static str {
    match (dialect, expr) {
        (Dialect::Lake, "e.eventtime") => "to_iso8601(e.eventtime)",
        (Dialect::Lake, "e.requestparameters") => "json_format(CAST(e.requestparameters AS JSON))",
        (Dialect::Lake, "e.responseelements") => "json_format(CAST(e.responseelements AS JSON))",
        (Dialect::Lake, "e.\"$path\"") => "CAST(NULL AS varchar)",
        _ => expr,
    }
}

/// A string field inside a JSON column (`path` as `a.b.c`): `json_extract_scalar` of the
/// column for Athena; for Lake, the map's value, and `json_extract_scalar` of it for a nested
/// one.
fn field(dialect: Dialect, col: &str, path: &str) -> String {
    match dialect {
        Dialect::Athena(_) => format!("json_extract_scalar(e.{col}, '$.{path}')"),
        Dialect::Lake => match path.split_once('.') {
            None => format!("element_at(e.{col}, '{path}')"),
            Some((top, rest)) => {
                format!("json_extract_scalar(element_at(e.{col}, '{top}'), '$.{rest}')")
            }
        },
    }
}

/// Quotes a string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let mut v: Vec<&String> = items.into_iter().collect();
    v.sort();
    v.dedup();
    v.iter().map(|s| literal(s)).collect::<Vec<_>>().join(", ")
}

/// A quoted `"database"."table"`.
pub fn table_name(database: &str, table: &str) -> String {
    format!(
        "\"{}\".\"{}\"",
        database.replace('"', "\"\""),
        table.replace('"', "\"\"")
    )
}

fn time(t: DateTime<Utc>) -> String {
    literal(&t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// The partition (delivery-date) and exact event-time conditions of `range`.
fn when(dialect: Dialect, range: &Range) -> Vec<String> {
    let mut out = Vec::new();
    let layout = match dialect {
        Dialect::Athena(layout) => layout,
        Dialect::Lake => {
            // eventtime is a timestamp: compared with Lake's documented literal form.
            let at = |t: DateTime<Utc>| literal(&t.format("%Y-%m-%d %H:%M:%S").to_string());
            out.extend(range.since.map(|s| format!("e.eventtime >= {}", at(s))));
            out.extend(range.until.map(|u| format!("e.eventtime <= {}", at(u))));
            return out;
        }
    };
    let day = |t: DateTime<Utc>| literal(&t.format("%Y/%m/%d").to_string());
    let col = layout.date_column();
    match (range.since, range.until) {
        (Some(s), Some(u)) => out.push(format!(
            "{col} BETWEEN {} AND {}",
            day(s - Days::new(1)),
            day(u + Days::new(1))
        )),
        (Some(s), None) => out.push(format!("{col} >= {}", day(s - Days::new(1)))),
        (None, Some(u)) => out.push(format!("{col} <= {}", day(u + Days::new(1)))),
        (None, None) => {}
    }
    if let Some(s) = range.since {
        out.push(format!("e.eventtime >= {}", time(s)));
    }
    if let Some(u) = range.until {
        out.push(format!("e.eventtime <= {}", time(u)));
    }
    out
}

/// One query. `key`, for `sign`, is the condition on a `resources` entry `x` that names the
/// key: its first such entry is the row's `resource_arn` and `resource_type`. Trino's
/// `UNNEST` would expand each field of a `ROW` into a column of its own (so `UNNEST(resources)
/// AS u(r)` is not one column `r`), hence `filter` with a lambda, which reads the same in
/// Athena, Lake and DuckDB.
fn query(
    name: &'static str,
    dialect: Dialect,
    table: &str,
    key: Option<String>,
    partitions: Vec<String>,
    rest: Vec<String>,
) -> Query {
    let matching = key
        .as_ref()
        .map(|k| format!("filter(e.resources, x -> {k})"));
    let columns = COLUMNS
        .iter()
        .map(|(expr, col)| {
            let expr = match (expr.strip_prefix("r."), &matching) {
                (Some(field), Some(m)) => format!("{m}[1].{field}"),
                (Some(_), None) => "CAST(NULL AS varchar)".to_string(),
                (None, _) => column(dialect, expr).to_string(),
            };
            format!("  {expr} AS {col}")
        })
        .collect::<Vec<_>>()
        .join(",\n");
    let mut conditions = partitions;
    conditions.extend(rest);
    conditions.extend(matching.map(|m| format!("cardinality({m}) > 0")));
    let mut sql = format!("-- trail-for: {name}\nSELECT\n{columns}\nFROM {table} e");
    for (i, c) in conditions.iter().enumerate() {
        sql.push_str(if i == 0 { "\nWHERE " } else { "\n  AND " });
        sql.push_str(c);
    }
    Query { name, sql }
}

/// The `sign` and `pushes` queries of the first pass (none for what `interest` keeps none of).
/// A key without an ARN cannot be searched by ARN: it is returned in the second list, to be
/// reported as a gap.
pub fn first_pass(
    table: &str,
    dialect: Dialect,
    range: &Range,
    interest: &Interest,
) -> (Vec<Query>, Vec<String>) {
    let mut queries = Vec::new();
    let mut unsearchable = Vec::new();
    if let Some(keys) = &interest.keys {
        let mut partitions = when(dialect, range);
        let rest = vec![
            "e.eventsource = 'kms.amazonaws.com'".to_string(),
            "e.eventname = 'Sign'".to_string(),
        ];
        let key = if keys.is_empty() {
            // A key's ARN, as `event::is_key_arn` reads it (not the resource type, which a
            // record may leave out).
            "x.arn LIKE 'arn:%:kms:%:key/%'".to_string()
        } else {
            let arns: Vec<String> = keys.iter().filter_map(|k| k.arn.clone()).collect();
            unsearchable.extend(
                keys.iter()
                    .filter(|k| k.arn.is_none())
                    .map(|k| k.text.clone()),
            );
            if dialect == Dialect::Athena(Layout::Org) && arns.len() == keys.len() {
                let accounts: Vec<String> = keys.iter().filter_map(|k| k.account.clone()).collect();
                let regions: Vec<String> = keys.iter().filter_map(|k| k.region.clone()).collect();
                if accounts.len() == keys.len() && regions.len() == keys.len() {
                    partitions.insert(0, format!("e.account IN ({})", list(&accounts)));
                    partitions.insert(1, format!("e.region IN ({})", list(&regions)));
                }
            }
            format!("x.arn IN ({})", list(&arns))
        };
        if keys.is_empty() || unsearchable.len() < keys.len() {
            queries.push(query("sign", dialect, table, Some(key), partitions, rest));
        }
    }
    let pushes = |extra: Option<String>| {
        let mut rest = vec![
            "e.eventsource = 'ecr.amazonaws.com'".to_string(),
            "e.eventname = 'PutImage'".to_string(),
        ];
        rest.extend(extra);
        query("pushes", dialect, table, None, when(dialect, range), rest)
    };
    match &interest.pushes {
        Pushes::None => {}
        Pushes::All => queries.push(pushes(None)),
        Pushes::Of { digests } => {
            let mut any = vec![
                format!(
                    "{} LIKE 'sha256-%.sig'",
                    field(dialect, "requestparameters", "imageTag")
                ),
                format!(
                    "{} LIKE '%\"subject\"%'",
                    field(dialect, "requestparameters", "imageManifest")
                ),
            ];
            if !digests.is_empty() {
                any.insert(
                    0,
                    format!(
                        "{} IN ({})",
                        field(dialect, "responseelements", "image.imageId.imageDigest"),
                        list(digests)
                    ),
                );
            }
            queries.push(pushes(Some(format!("({})", any.join("\n    OR ")))));
        }
    }
    (queries, unsearchable)
}

/// The `roles` query: role assumptions that returned one of the callers' access keys or
/// assumed-role ARNs (`None` when there is no caller, or `interest` keeps no roles).
pub fn roles(table: &str, dialect: Dialect, range: &Range, interest: &Interest) -> Option<Query> {
    let names = "e.eventname IN ('AssumeRoleWithWebIdentity', 'AssumeRole')";
    let mut rest = vec![
        "e.eventsource = 'sts.amazonaws.com'".to_string(),
        names.to_string(),
    ];
    match &interest.roles {
        Roles::None => return None,
        Roles::All => {}
        Roles::Of { access_keys, arns } => {
            let mut any = Vec::new();
            if !access_keys.is_empty() {
                any.push(format!(
                    "{} IN ({})",
                    field(dialect, "responseelements", "credentials.accessKeyId"),
                    list(access_keys)
                ));
            }
            if !arns.is_empty() {
                any.push(format!(
                    "{} IN ({})",
                    field(dialect, "responseelements", "assumedRoleUser.arn"),
                    list(arns)
                ));
            }
            if any.is_empty() {
                return None;
            }
            rest.push(format!("({})", any.join("\n    OR ")));
        }
    }
    Some(query(
        "roles",
        dialect,
        table,
        None,
        when(dialect, range),
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trail::keys::KeySpec;
    use std::collections::HashSet;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Compares with the reviewed snapshot `shared/testdata/athena/NAME.sql`
    /// (`SIGTRAIL_UPDATE_SNAPSHOTS=1` writes it).
    fn snapshot(name: &str, queries: &[Query]) {
        let text: String = queries.iter().map(|q| format!("{};\n\n", q.sql)).collect();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/athena")
            .join(format!("{name}.sql"));
        if std::env::var_os("SIGTRAIL_UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (SIGTRAIL_UPDATE_SNAPSHOTS=1 writes it)",
                path.display()
            )
        });
        assert_eq!(
            text,
            want,
            "{} differs: review, then SIGTRAIL_UPDATE_SNAPSHOTS=1",
            path.display()
        );
    }

    fn key() -> KeySpec {
        KeySpec::parse(
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        )
        .unwrap()
    }

    fn year() -> Range {
        Range {
            since: Some(t("2025-01-01T00:00:00Z")),
            until: Some(t("2025-12-31T23:59:59Z")),
        }
    }

    fn one_image() -> Interest {
        Interest {
            keys: Some(vec![key()]),
            pushes: Pushes::Of {
                digests: HashSet::from([
                    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                        .to_string(),
                ]),
            },
            roles: Roles::None,
            ..Interest::default()
        }
    }

    #[test]
    fn one_image_over_a_year_of_an_organization_trail() {
        let table = table_name("cloudtrail", "org_trail");
        let (mut queries, unsearchable) =
            first_pass(&table, Dialect::Athena(Layout::Org), &year(), &one_image());
        assert!(unsearchable.is_empty());
        let roles = Interest {
            roles: Roles::Of {
                access_keys: HashSet::from(["ASIAEXAMPLECALLER".to_string()]),
                arns: HashSet::from([
                    "arn:aws:sts::111122223333:assumed-role/ci-signer/run-42".to_string()
                ]),
            },
            ..Interest::default()
        };
        queries.extend(super::roles(
            &table,
            Dialect::Athena(Layout::Org),
            &year(),
            &roles,
        ));
        assert_eq!(
            queries.iter().map(|q| q.name).collect::<Vec<_>>(),
            ["sign", "pushes", "roles"]
        );
        snapshot("one-image-org", &queries);
    }

    #[test]
    fn key_usage_on_one_accounts_table_and_every_key_open_ended() {
        let table = table_name("default", "cloudtrail_logs_pp");
        let usage = Interest {
            keys: Some(vec![key()]),
            pushes: Pushes::Of {
                digests: HashSet::new(),
            },
            roles: Roles::None,
            ..Interest::default()
        };
        let since = Range {
            since: Some(t("2025-11-10T00:00:00Z")),
            until: None,
        };
        let (queries, _) = first_pass(&table, Dialect::Athena(Layout::Account), &since, &usage);
        snapshot("key-usage-account", &queries);
        // No --key: every key's Sign events; no range: no partition is pruned.
        let every = Interest {
            keys: Some(Vec::new()),
            ..usage
        };
        let (queries, _) = first_pass(
            &table,
            Dialect::Athena(Layout::Org),
            &Range::default(),
            &every,
        );
        assert!(queries[0].sql.contains("x.arn LIKE 'arn:%:kms:%:key/%'"));
        assert!(!queries[0].sql.contains("\"date\""), "{}", queries[0].sql);
    }

    #[test]
    fn one_image_on_a_cloudtrail_lake_event_data_store() {
        let store = "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111";
        let (mut queries, _) = first_pass(store, Dialect::Lake, &year(), &one_image());
        let roles = Interest {
            roles: Roles::Of {
                access_keys: HashSet::from(["ASIAEXAMPLECALLER".to_string()]),
                arns: HashSet::new(),
            },
            ..Interest::default()
        };
        queries.extend(super::roles(store, Dialect::Lake, &year(), &roles));
        assert!(queries
            .iter()
            .all(|q| !q.sql.contains("$path") && !q.sql.contains("\"date\"")));
        snapshot("one-image-lake", &queries);
    }

    #[test]
    fn values_cannot_end_a_literal_and_unresolved_keys_are_named() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(table_name("d\"b", "t"), "\"d\"\"b\".\"t\"");
        let roles = Interest {
            roles: Roles::Of {
                access_keys: HashSet::from(["x') OR 1=1 --".to_string()]),
                arns: HashSet::new(),
            },
            ..Interest::default()
        };
        let q = super::roles("t", Dialect::Athena(Layout::Org), &year(), &roles).unwrap();
        assert!(q.sql.contains("IN ('x'') OR 1=1 --')"), "{}", q.sql);
        let alias = Interest {
            keys: Some(vec![KeySpec::parse("alias/cosign").unwrap()]),
            pushes: Pushes::None,
            ..Interest::default()
        };
        let (queries, unsearchable) =
            first_pass("t", Dialect::Athena(Layout::Org), &year(), &alias);
        assert!(queries.is_empty());
        assert_eq!(unsearchable, ["alias/cosign"]);
        assert!(super::roles(
            "t",
            Dialect::Athena(Layout::Org),
            &year(),
            &Interest::default()
        )
        .is_some());
        let none = Interest {
            roles: Roles::None,
            ..Interest::default()
        };
        assert!(super::roles("t", Dialect::Athena(Layout::Org), &year(), &none).is_none());
    }
}
