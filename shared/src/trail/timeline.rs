//! `--timeline FILE.html|FILE.svg`: an image's trail on one time axis (commit, CI run, image
//! push, KMS sign, signature push, compromise time), as self-contained SVG: inline styles, no
//! script, no network; hovering a mark shows its details (`<title>`).

use chrono::{DateTime, Duration, Utc};

/// The lanes, top to bottom.
pub const LANES: [&str; 5] = [
    "commit",
    "CI run",
    "image push",
    "KMS Sign",
    "signature push",
];

/// One point on the axis.
#[derive(Debug, Clone)]
pub struct Mark {
    pub time: DateTime<Utc>,
    /// Index into [`LANES`].
    pub lane: usize,
    pub label: String,
    /// Shown on hover.
    pub detail: String,
    /// `trusted`, `untrusted`, `unexplained` or `info`: the colour.
    pub state: &'static str,
}

/// One image's picture.
#[derive(Debug, Clone)]
pub struct Picture {
    pub title: String,
    pub subtitle: String,
    pub marks: Vec<Mark>,
    /// Pairs of mark indices drawn joined (a Sign and the push it explains).
    pub links: Vec<(usize, usize)>,
    pub compromised_at: Option<DateTime<Utc>>,
}

const W: f64 = 1100.0;
const LEFT: f64 = 130.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 64.0;
const LANE: f64 = 56.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn colour(state: &str) -> &'static str {
    match state {
        "trusted" => "#1a7f37",
        "untrusted" => "#cf222e",
        "unexplained" => "#bf8700",
        _ => "#0969da",
    }
}

/// A tick step that gives at most about eight ticks over `span`.
fn step(span: Duration) -> Duration {
    const STEPS: [i64; 17] = [
        1,
        5,
        15,
        30,
        60,
        300,
        900,
        1800,
        3600,
        3 * 3600,
        6 * 3600,
        12 * 3600,
        86400,
        2 * 86400,
        7 * 86400,
        30 * 86400,
        365 * 86400,
    ];
    let secs = span.num_seconds().max(1);
    let s = STEPS
        .iter()
        .copied()
        .find(|s| secs / s <= 8)
        .unwrap_or(365 * 86400);
    Duration::seconds(s)
}

/// The picture as one `<svg>` element.
pub fn svg(p: &Picture) -> String {
    let height = TOP + LANE * LANES.len() as f64 + 56.0;
    let mut times: Vec<DateTime<Utc>> = p.marks.iter().map(|m| m.time).collect();
    times.extend(p.compromised_at);
    let (mut lo, mut hi) = match (times.iter().min(), times.iter().max()) {
        (Some(a), Some(b)) => (*a, *b),
        _ => {
            let now = Utc::now();
            (now, now)
        }
    };
    if hi - lo < Duration::seconds(20) {
        lo -= Duration::seconds(10);
        hi += Duration::seconds(10);
    }
    let pad = (hi - lo) / 20;
    let (lo, hi) = (lo - pad, hi + pad);
    let span = (hi - lo).num_milliseconds().max(1) as f64;
    let x =
        |t: DateTime<Utc>| LEFT + (W - LEFT - RIGHT) * ((t - lo).num_milliseconds() as f64 / span);
    let y = |lane: usize| TOP + LANE * lane as f64 + LANE / 2.0;
    let mut s = String::new();
    s += &format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="system-ui, sans-serif" font-size="12" role="img" aria-label="{}">"#,
        esc(&p.title)
    );
    s += &format!(r##"<rect width="{W}" height="{height}" fill="#ffffff"/>"##);
    s += &format!(
        r##"<text x="12" y="22" font-size="15" font-weight="600" fill="#1f2328">{}</text><text x="12" y="42" fill="#57606a">{}</text>"##,
        esc(&p.title),
        esc(&p.subtitle)
    );
    for (i, name) in LANES.iter().enumerate() {
        let yy = y(i);
        let band = if i % 2 == 0 { "#f6f8fa" } else { "#ffffff" };
        s += &format!(
            r##"<rect x="0" y="{}" width="{W}" height="{LANE}" fill="{band}"/><text x="12" y="{}" fill="#57606a">{name}</text><line x1="{LEFT}" y1="{yy}" x2="{}" y2="{yy}" stroke="#d0d7de"/>"##,
            yy - LANE / 2.0,
            yy + 4.0,
            W - RIGHT
        );
    }
    // Axis with ticks.
    let axis_y = TOP + LANE * LANES.len() as f64 + 8.0;
    s += &format!(
        r##"<line x1="{LEFT}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#57606a"/>"##,
        W - RIGHT
    );
    let st = step(hi - lo);
    let secs = st.num_seconds();
    let first = lo.timestamp().div_euclid(secs) * secs + secs;
    let fmt = if secs >= 86400 {
        "%Y-%m-%d"
    } else if secs >= 60 {
        "%m-%d %H:%M"
    } else {
        "%H:%M:%S"
    };
    let mut t = first;
    while t <= hi.timestamp() {
        if let Some(tt) = DateTime::from_timestamp(t, 0) {
            let xx = x(tt);
            s += &format!(
                r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{}" stroke="#eaeef2"/><text x="{xx:.1}" y="{}" text-anchor="middle" fill="#57606a">{}</text>"##,
                axis_y + 4.0,
                axis_y + 20.0,
                tt.format(fmt)
            );
        }
        t += secs;
    }
    s += &format!(
        r##"<text x="{}" y="{}" text-anchor="end" fill="#8c959f">UTC</text>"##,
        W - RIGHT,
        axis_y + 38.0
    );
    if let Some(c) = p.compromised_at {
        let xx = x(c);
        s += &format!(
            r##"<g><title>key compromised at {}</title><line x1="{xx:.1}" y1="{}" x2="{xx:.1}" y2="{axis_y}" stroke="#cf222e" stroke-width="2" stroke-dasharray="6 4"/><text x="{:.1}" y="{}" fill="#cf222e" font-weight="600">compromise</text></g>"##,
            c.to_rfc3339(),
            TOP - 6.0,
            xx + 4.0,
            TOP - 8.0
        );
    }
    for &(a, b) in &p.links {
        if let (Some(ma), Some(mb)) = (p.marks.get(a), p.marks.get(b)) {
            s += &format!(
                r##"<line x1="{:.1}" y1="{}" x2="{:.1}" y2="{}" stroke="{}" stroke-width="1.5" stroke-dasharray="3 3"/>"##,
                x(ma.time),
                y(ma.lane),
                x(mb.time),
                y(mb.lane),
                colour(mb.state)
            );
        }
    }
    let mut per_lane = [0usize; LANES.len()];
    for m in &p.marks {
        let lane = m.lane.min(LANES.len() - 1);
        let (xx, yy) = (x(m.time), y(lane));
        // Alternate labels above and below so neighbours don't overwrite each other.
        let above = per_lane[lane] % 2 == 0;
        per_lane[lane] += 1;
        let ly = if above { yy - 11.0 } else { yy + 20.0 };
        let anchor = if xx > W - 200.0 { "end" } else { "start" };
        let lx = if anchor == "end" { xx - 4.0 } else { xx + 4.0 };
        s += &format!(
            r##"<g><title>{}</title><circle cx="{xx:.1}" cy="{yy}" r="6.5" fill="{}" stroke="#ffffff" stroke-width="1.5"/><text x="{lx:.1}" y="{ly}" text-anchor="{anchor}" fill="#1f2328">{}</text></g>"##,
            esc(&m.detail),
            colour(m.state),
            esc(&m.label)
        );
    }
    s += "</svg>";
    s
}

/// A page with one picture per image.
pub fn html(pictures: &[Picture]) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sigtrail: signing timeline</title>\
         <style>body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328;background:#fff}\
         h1{font-size:20px}section{margin:0 0 28px}svg{border:1px solid #d0d7de;border-radius:6px;max-width:100%;height:auto}\
         .key span{display:inline-block;width:10px;height:10px;border-radius:5px;margin:0 4px 0 14px}</style></head><body>\
         <h1>Signing timeline</h1><p class=\"key\">trail-for: CloudTrail, ECR and git evidence per image.\
         <span style=\"background:#1a7f37\"></span>trusted<span style=\"background:#cf222e\"></span>untrusted\
         <span style=\"background:#bf8700\"></span>unexplained<span style=\"background:#0969da\"></span>event</p>\n",
    );
    for p in pictures {
        s += "<section>";
        s += &svg(p);
        s += "</section>\n";
    }
    s += "</body></html>\n";
    s
}

/// The file's content: HTML, or for a `.svg` path the pictures stacked in one SVG.
pub fn render(path: &std::path::Path, pictures: &[Picture]) -> String {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        let h = TOP + LANE * LANES.len() as f64 + 56.0;
        let total = h * pictures.len().max(1) as f64;
        let mut s = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{total}" viewBox="0 0 {W} {total}">"#
        );
        for (i, p) in pictures.iter().enumerate() {
            s += &format!(r#"<g transform="translate(0 {})">"#, h * i as f64);
            s += &svg(p);
            s += "</g>";
        }
        s += "</svg>\n";
        s
    } else {
        html(pictures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picture_is_self_contained_and_escaped() {
        let t = DateTime::parse_from_rfc3339("2025-11-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = Picture {
            title: "app@sha256:aa <x>".into(),
            subtitle: "trusted".into(),
            marks: vec![
                Mark {
                    time: t,
                    lane: 3,
                    label: "Sign".into(),
                    detail: "k & v".into(),
                    state: "trusted",
                },
                Mark {
                    time: t + Duration::seconds(5),
                    lane: 4,
                    label: "push".into(),
                    detail: "p".into(),
                    state: "trusted",
                },
            ],
            links: vec![(0, 1)],
            compromised_at: Some(t + Duration::hours(1)),
        };
        let page = html(std::slice::from_ref(&p));
        assert!(page.contains("app@sha256:aa &lt;x&gt;"));
        assert!(page.contains("k &amp; v"));
        assert!(page.contains("compromise"));
        assert!(!page.contains("<script"));
        let ns = "http://www.w3.org/2000/svg";
        assert_eq!(
            page.matches("http").count(),
            page.matches(ns).count(),
            "no link but the SVG namespace"
        );
        let svg_file = render(std::path::Path::new("t.svg"), &[p]);
        assert!(svg_file.starts_with("<svg"));
        assert_eq!(step(Duration::hours(1)), Duration::seconds(900));
    }
}
