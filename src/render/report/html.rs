//! The report as one self-contained HTML page, to attach to an audit
//! ticket: inline CSS, an inline SVG key-age histogram per account, no
//! script and no reference to anything outside the file. Every value is
//! escaped.

use std::fmt::Write as _;

use super::{
    account_line, headline, history_line, last_used, legend, notes, problems, results, why,
};
use crate::audit::controls::CONTROLS;
use crate::audit::{AccountAudit, AuditReport, KeyEntry};

/// The histogram's bins, in days: 0–30, 30–60, 60–90, over 90.
const BINS: [(i64, Option<i64>, &str); 4] = [
    (0, Some(30), "0–30"),
    (30, Some(60), "30–60"),
    (60, Some(90), "60–90"),
    (90, None, "over 90"),
];

const STYLE: &str = "
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #1b1f24; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #d0d7de; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr.failing td, li.failing { background: #ffebe9; }
td.FAILED { color: #b3261e; font-weight: 600; } td.PASSED { color: #1a7f37; }
code { font: 13px ui-monospace, monospace; }
.note { color: #57606a; }
svg.histogram .bar { fill: #57606a; } svg.histogram .bar.over { fill: #b3261e; }
svg.histogram .deadline { stroke: #b3261e; stroke-width: 2; stroke-dasharray: 4 3; }
svg.histogram text { font: 11px system-ui, sans-serif; fill: #1b1f24; }
";

pub fn html(report: &AuditReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Access key report, {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>Access key report</h1>\n<p id=\"headline\">{}</p>\n<p class=\"note\">Generated {} by rekey {}.</p>\n",
        escape(&report.as_of),
        escape(&headline(report)),
        escape(&report.generated_at),
        env!("CARGO_PKG_VERSION")
    );
    let problems = problems(report);
    if !problems.is_empty() {
        let _ = writeln!(out, "<ul id=\"problems\">");
        for problem in problems {
            let _ = writeln!(out, "<li class=\"failing\">{}</li>", escape(&problem));
        }
        let _ = writeln!(out, "</ul>");
    }
    for account in &report.accounts {
        section(&mut out, account, deadline_days(&report.deadline));
    }
    let _ = write!(
        out,
        "<h2>Controls</h2>\n<pre>{}</pre>\n</body>\n</html>\n",
        escape(&legend())
    );
    out
}

fn deadline_days(deadline: &str) -> i64 {
    deadline
        .parse::<crate::workflow::duration::Duration>()
        .map(|d| (d.as_secs() / 86_400) as i64)
        .unwrap_or(90)
}

fn section(out: &mut String, account: &AccountAudit, deadline: i64) {
    let id = escape(&account.account);
    let _ = writeln!(
        out,
        "<section class=\"account\" id=\"account-{id}\">\n<h2>{}</h2>",
        escape(&account_line(account))
    );
    for note in notes(account) {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(&note));
    }
    if account.error.is_none() {
        histogram(out, account, deadline);
    }
    let failing: Vec<&KeyEntry> = account.keys.iter().filter(|k| k.failing).collect();
    let _ = writeln!(out, "<h3>Failing keys ({})</h3>", failing.len());
    if failing.is_empty() {
        let _ = writeln!(out, "<p>None.</p>");
    } else {
        keys_table(out, &format!("failing-{id}"), &failing);
    }
    let _ = writeln!(out, "<h3>Every key, and the workflow that covers it</h3>");
    let all: Vec<&KeyEntry> = account.keys.iter().collect();
    keys_table(out, &format!("keys-{id}"), &all);
    let _ = writeln!(out, "<h3>History</h3>");
    if account.history.is_empty() {
        let _ = writeln!(out, "<p>No rotation recorded.</p>");
    } else {
        let _ = writeln!(out, "<ol class=\"history\">");
        for entry in &account.history {
            let _ = writeln!(
                out,
                "<li data-rotation=\"{}\">{}</li>",
                escape(&entry.rotation),
                escape(&history_line(entry))
            );
        }
        let _ = writeln!(out, "</ol>");
    }
    let _ = writeln!(out, "</section>");
}

fn keys_table(out: &mut String, id: &str, keys: &[&KeyEntry]) {
    let controls: String = CONTROLS
        .iter()
        .map(|c| format!("<th>{}</th>", escape(c.id)))
        .collect();
    let _ = writeln!(
        out,
        "<table id=\"{id}\">\n<tr><th>user</th><th>access key id</th><th>status</th><th>age</th><th>last used</th><th>workflow</th>{controls}<th>why</th></tr>"
    );
    for key in keys {
        let cells: String = results(key)
            .iter()
            .map(|r| format!("<td class=\"{r}\">{r}</td>"))
            .collect();
        let _ = writeln!(
            out,
            "<tr class=\"{}\" data-key=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}d</td><td>{}</td><td>{}</td>{cells}<td>{}</td></tr>",
            if key.failing { "failing" } else { "passing" },
            escape(&key.access_key_id),
            escape(&key.user),
            escape(&key.access_key_id),
            key.status,
            key.age_days,
            escape(&last_used(key)),
            escape(key.workflow.as_deref().unwrap_or("(none)")),
            escape(&why(key))
        );
    }
    let _ = writeln!(out, "</table>");
}

/// Keys by age, four bars, the deadline drawn where it falls.
fn histogram(out: &mut String, account: &AccountAudit, deadline: i64) {
    let counts: Vec<usize> = BINS
        .iter()
        .map(|(from, to, _)| {
            account
                .keys
                .iter()
                .filter(|k| k.age_days >= *from && to.is_none_or(|to| k.age_days < to))
                .count()
        })
        .collect();
    let most = counts.iter().copied().max().unwrap_or(0).max(1);
    let (left, top, bar, gap, height) = (40.0, 20.0, 70.0, 10.0, 120.0);
    let width = left + 4.0 * (bar + gap) + 20.0;
    let _ = writeln!(
        out,
        "<svg class=\"histogram\" data-account=\"{}\" role=\"img\" aria-label=\"key ages\" width=\"{width}\" height=\"{}\" viewBox=\"0 0 {width} {}\">",
        escape(&account.account),
        top + height + 40.0,
        top + height + 40.0
    );
    let _ = writeln!(
        out,
        "<title>Key ages in account {}</title>",
        escape(&account.account)
    );
    for (i, ((_, to, label), count)) in BINS.iter().zip(&counts).enumerate() {
        let h = height * (*count as f64) / (most as f64);
        let x = left + i as f64 * (bar + gap);
        let y = top + height - h;
        let over = to.is_none_or(|to| to > deadline);
        let _ = writeln!(
            out,
            "<rect class=\"bar{}\" data-bin=\"{label}\" data-count=\"{count}\" x=\"{x}\" y=\"{y}\" width=\"{bar}\" height=\"{h}\"><title>{label} days: {count}</title></rect>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{count}</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{label} d</text>",
            if over { " over" } else { "" },
            x + bar / 2.0,
            y - 4.0,
            x + bar / 2.0,
            top + height + 16.0
        );
    }
    // Each bin spans 30 days; the deadline falls inside the scale or at
    // the start of the last bar.
    let position = (deadline.min(90) as f64) / 30.0;
    let x = left + position * (bar + gap) - gap / 2.0;
    let _ = writeln!(
        out,
        "<line class=\"deadline\" data-days=\"{deadline}\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/>\n<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">deadline {deadline}d</text>\n</svg>",
        top - 6.0,
        top + height,
        top + height + 32.0
    );
}

pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
