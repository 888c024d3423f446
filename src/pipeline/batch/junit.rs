//! The batch report as JUnit XML, which CI systems show as a test list: one testcase per
//! item (classname: the model, name: the variant), with a `failure` or `skipped` element.

use super::report::{BatchReport, ItemReport, Status};
use std::fmt::Write;

/// The JUnit XML document of `report`.
pub fn junit(report: &BatchReport) -> String {
    let t = &report.totals;
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let suite = format!(
        "name=\"mlpack batch\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\"",
        t.items, t.failed, t.skipped, t.seconds
    );
    let _ = writeln!(xml, "<testsuites {suite}>");
    let _ = writeln!(xml, "  <testsuite {suite}>");
    for item in &report.items {
        testcase(&mut xml, item);
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// Appends the `testcase` element of `item`.
fn testcase(xml: &mut String, item: &ItemReport) {
    let _ = write!(
        xml,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
        escape(&item.model),
        escape(&item.variant),
        item.seconds
    );
    let error = escape(item.error.as_deref().unwrap_or(""));
    match item.status {
        Status::Ok | Status::Cached => {
            let _ = writeln!(
                xml,
                ">\n      <system-out>{} {}</system-out>\n    </testcase>",
                if item.status == Status::Ok {
                    "wrote"
                } else {
                    "cached"
                },
                escape(&item.output.display().to_string())
            );
        }
        Status::Failed => {
            let _ = writeln!(
                xml,
                ">\n      <failure message=\"{error}\" type=\"exit code {}\">{error}</failure>\n    </testcase>",
                item.exit_code.unwrap_or(1)
            );
        }
        Status::Skipped => {
            let _ = writeln!(
                xml,
                ">\n      <skipped message=\"{error}\"/>\n    </testcase>"
            );
        }
    }
}

/// `text` as XML character data or attribute value: markup characters as entities, and the
/// control characters XML 1.0 cannot hold as U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b>&\"c\" 'd'\n\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&quot; &apos;d&apos;&#10;\u{FFFD}"
        );
    }
}
