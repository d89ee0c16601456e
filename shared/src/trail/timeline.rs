//! `--timeline FILE.html|FILE.svg`: an image's trail on one time axis (commit, CI run, image
//! push, KMS sign, signature push, compromise time), as self-contained SVG: inline styles, no
//! script, no network; hovering a mark shows its details (`<title>`).
//!
//! A few events far from the rest (an old commit) get a narrow part of the axis of their own
//! behind an axis break, so the recent events keep the width. Titles too long for the picture end
//! in `…` and show in full on hover.

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

/// Width of the part of the axis given to far-away events, and of the break after it.
const FAR_W: f64 = 150.0;
const BREAK_W: f64 = 28.0;

/// A gap this many times longer than all the other events together (at least a minute) breaks
/// the axis.
const BREAK_RATIO: i32 = 10;

/// A linear part of the axis: times `lo..=hi` drawn from `x0` to `x1`.
#[derive(Debug, Clone, Copy)]
struct Piece {
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    x0: f64,
    x1: f64,
}

impl Piece {
    /// The times `lo..=hi` padded (at least 20 s wide, plus 5% each side) over `x0..x1`.
    fn new(lo: DateTime<Utc>, hi: DateTime<Utc>, x0: f64, x1: f64) -> Piece {
        let (mut lo, mut hi) = (lo, hi);
        if hi - lo < Duration::seconds(20) {
            lo -= Duration::seconds(10);
            hi += Duration::seconds(10);
        }
        let pad = (hi - lo) / 20;
        Piece {
            lo: lo - pad,
            hi: hi + pad,
            x0,
            x1,
        }
    }

    fn x(&self, t: DateTime<Utc>) -> f64 {
        let span = (self.hi - self.lo).num_milliseconds().max(1) as f64;
        self.x0 + (self.x1 - self.x0) * ((t - self.lo).num_milliseconds() as f64 / span)
    }
}

/// The x axis: one piece, or two with a break between them (`far` is the narrow one).
#[derive(Debug)]
struct Axis {
    pieces: Vec<Piece>,
    far: Option<usize>,
}

impl Axis {
    fn new(times: &[DateTime<Utc>]) -> Axis {
        let (x0, x1) = (LEFT, W - RIGHT);
        let mut t = times.to_vec();
        t.sort();
        let (Some(&first), Some(&last)) = (t.first(), t.last()) else {
            let now = Utc::now();
            return Axis {
                pieces: vec![Piece::new(now, now, x0, x1)],
                far: None,
            };
        };
        // The widest gap between neighbours; break there if everything else is far narrower.
        let widest = (1..t.len()).max_by_key(|&i| t[i] - t[i - 1]);
        let Some(i) = widest.filter(|&i| {
            let gap = t[i] - t[i - 1];
            let rest = (last - first - gap).max(Duration::minutes(1));
            gap > rest * BREAK_RATIO
        }) else {
            return Axis {
                pieces: vec![Piece::new(first, last, x0, x1)],
                far: None,
            };
        };
        let (before, after) = ((first, t[i - 1]), (t[i], last));
        // The side with fewer events is the far one; on a tie, the older side.
        if i <= t.len() - i {
            Axis {
                pieces: vec![
                    Piece::new(before.0, before.1, x0, x0 + FAR_W),
                    Piece::new(after.0, after.1, x0 + FAR_W + BREAK_W, x1),
                ],
                far: Some(0),
            }
        } else {
            Axis {
                pieces: vec![
                    Piece::new(before.0, before.1, x0, x1 - FAR_W - BREAK_W),
                    Piece::new(after.0, after.1, x1 - FAR_W, x1),
                ],
                far: Some(1),
            }
        }
    }

    fn x(&self, t: DateTime<Utc>) -> f64 {
        match self.pieces.as_slice() {
            [a, b] if t > a.hi => b.x(t),
            [a, ..] => a.x(t),
            [] => LEFT,
        }
    }
}

/// A duration the way the axis break names it: `3d 4h`, `5h 12m`, `40m`.
fn human(d: Duration) -> String {
    let (days, hours, minutes) = (d.num_days(), d.num_hours() % 24, d.num_minutes() % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else {
        format!("{}m", d.num_minutes())
    }
}

/// `text` in a `<text>` element `attrs`, cut to fit `width` pixels at `size` px (`…` at the end,
/// the whole text on hover).
fn fitted_text(text: &str, attrs: &str, width: f64, size: f64) -> String {
    // A generous average glyph width for system-ui; digests and capitals are the wide ones.
    let max = (width / (size * 0.6)) as usize;
    if text.chars().count() <= max {
        return format!("<text {attrs}>{}</text>", esc(text));
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!(
        "<g><title>{}</title><text {attrs}>{}…</text></g>",
        esc(text),
        esc(cut.trim_end())
    )
}

/// A tick step that gives at most about `ticks` ticks over `span`.
fn step(span: Duration, ticks: i64) -> Duration {
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
        .find(|s| secs / s <= ticks.max(1))
        .unwrap_or(365 * 86400);
    Duration::seconds(s)
}

/// The picture as one `<svg>` element.
pub fn svg(p: &Picture) -> String {
    let height = TOP + LANE * LANES.len() as f64 + 56.0;
    let mut times: Vec<DateTime<Utc>> = p.marks.iter().map(|m| m.time).collect();
    times.extend(p.compromised_at);
    let axis = Axis::new(&times);
    let x = |t: DateTime<Utc>| axis.x(t);
    let y = |lane: usize| TOP + LANE * lane as f64 + LANE / 2.0;
    let mut s = String::new();
    s += &format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="system-ui, sans-serif" font-size="12" role="img" aria-label="{}">"#,
        esc(&p.title)
    );
    s += &format!(r##"<rect width="{W}" height="{height}" fill="#ffffff"/>"##);
    s += &fitted_text(
        &p.title,
        r##"x="12" y="22" font-size="15" font-weight="600" fill="#1f2328""##,
        W - 24.0,
        15.0,
    );
    s += &fitted_text(
        &p.subtitle,
        r##"x="12" y="42" fill="#57606a""##,
        W - 24.0,
        12.0,
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
    for (i, piece) in axis.pieces.iter().enumerate() {
        if axis.far == Some(i) {
            // One label: when the far-away events happened.
            let mid = piece.lo + (piece.hi - piece.lo) / 2;
            s += &format!(
                r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#57606a">{}</text>"##,
                piece.x(mid),
                axis_y + 20.0,
                mid.format("%Y-%m-%d %H:%M")
            );
            continue;
        }
        let ticks = (8.0 * (piece.x1 - piece.x0) / (W - LEFT - RIGHT)).round() as i64;
        let secs = step(piece.hi - piece.lo, ticks).num_seconds();
        let fmt = if secs >= 86400 {
            "%Y-%m-%d"
        } else if secs >= 60 {
            "%m-%d %H:%M"
        } else {
            "%H:%M:%S"
        };
        let mut t = piece.lo.timestamp().div_euclid(secs) * secs + secs;
        while t <= piece.hi.timestamp() {
            if let Some(tt) = DateTime::from_timestamp(t, 0) {
                let xx = piece.x(tt);
                s += &format!(
                    r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{}" stroke="#eaeef2"/><text x="{xx:.1}" y="{}" text-anchor="middle" fill="#57606a">{}</text>"##,
                    axis_y + 4.0,
                    axis_y + 20.0,
                    tt.format(fmt)
                );
            }
            t += secs;
        }
    }
    if let [a, b] = axis.pieces.as_slice() {
        // The break: a white gap through lanes and axis, `//` on the axis, the time left out.
        let (bx, bw) = (a.x1, b.x0 - a.x1);
        let mid = bx + bw / 2.0;
        s += &format!(
            r##"<g><title>axis break: {} left out</title><rect x="{bx:.1}" y="{TOP}" width="{bw:.1}" height="{}" fill="#ffffff"/><path d="M{:.1} {} l6 -12 M{:.1} {} l6 -12" stroke="#57606a" stroke-width="1.5"/><text x="{mid:.1}" y="{}" text-anchor="middle" font-size="10" fill="#8c959f">{}</text></g>"##,
            human(b.lo - a.hi),
            axis_y - TOP + 1.0,
            mid - 7.0,
            axis_y + 6.0,
            mid + 1.0,
            axis_y + 6.0,
            axis_y + 32.0,
            human(b.lo - a.hi)
        );
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
        assert_eq!(step(Duration::hours(1), 8), Duration::seconds(900));
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn an_old_commit_gets_its_own_part_of_the_axis() {
        let commit = at("2025-11-07T09:30:00Z");
        let recent: Vec<DateTime<Utc>> = (0..5)
            .map(|i| at("2025-11-10T12:00:00Z") + Duration::seconds(15 * i))
            .collect();
        let mut times = recent.clone();
        times.push(commit);
        let axis = Axis::new(&times);
        assert_eq!((axis.pieces.len(), axis.far), (2, Some(0)));
        assert!(axis.x(commit) < LEFT + FAR_W);
        // One minute of events spreads over the main part instead of one column.
        let spread = axis.x(recent[4]) - axis.x(recent[0]);
        assert!(spread > 600.0, "recent events span {spread:.0} px");
        for w in recent.windows(2) {
            assert!(axis.x(w[1]) - axis.x(w[0]) > 150.0);
        }

        let mark = |time, lane| Mark {
            time,
            lane,
            label: "m".into(),
            detail: "d".into(),
            state: "info",
        };
        let mut marks = vec![mark(commit, 0)];
        marks.extend(recent.iter().map(|&t| mark(t, 3)));
        let svg = svg(&Picture {
            title: "t".into(),
            subtitle: "s".into(),
            marks,
            links: Vec::new(),
            compromised_at: None,
        });
        assert!(svg.contains("axis break: 3d 2h left out"), "{svg}");
        assert!(
            svg.contains("2025-11-07 09:30"),
            "the far part's date: {svg}"
        );

        // A commit a few minutes before the run shares the axis.
        times.pop();
        times.push(at("2025-11-10T11:57:00Z"));
        let axis = Axis::new(&times);
        assert_eq!((axis.pieces.len(), axis.far), (1, None));
        // A late event alone on the right is the far one there.
        times.push(at("2025-11-12T00:00:00Z"));
        assert_eq!(Axis::new(&times).far, Some(1));
    }

    #[test]
    fn long_subtitles_end_in_an_ellipsis_and_keep_the_full_text() {
        let reason = format!(
            "untrusted: {}<end>",
            "the reason goes on and on ".repeat(20)
        );
        let svg = svg(&Picture {
            title: "app@sha256:aa".into(),
            subtitle: reason.clone(),
            marks: Vec::new(),
            links: Vec::new(),
            compromised_at: None,
        });
        assert!(svg.contains(&format!("<title>{}</title>", esc(&reason))));
        let shown = svg
            .split(r##"fill="#57606a">"##)
            .nth(1)
            .and_then(|t| t.split("</text>").next())
            .unwrap();
        assert!(shown.ends_with('…'), "{shown}");
        assert!(
            shown.chars().count() as f64 * 12.0 * 0.6 <= W - 24.0,
            "{shown}"
        );
        // A short one is drawn as is, with no tooltip.
        let short = fitted_text("trusted: ok", "x=\"1\"", W, 12.0);
        assert_eq!(short, "<text x=\"1\">trusted: ok</text>");
    }
}
