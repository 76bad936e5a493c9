//! Example requests against a loaded model, printed by `encore-serve` at start-up
//! so that the first thing to try is one copy-paste away.

use encore_model::engine::{Engine, ListFilter};

/// `curl` command lines for the main endpoints of the server at `base_url`
/// (e.g. `http://127.0.0.1:8080`), using a real item (the most popular one)
/// and a real customer (the first with a purchase history) of `engine`.
pub fn example_requests(engine: &Engine, base_url: &str) -> Vec<String> {
    let base = base_url.trim_end_matches('/');
    let mut lines = vec![format!("curl -s {base}/v1/model")];
    let item = engine
        .fallback(1, &ListFilter::default())
        .first()
        .map(|&(i, _)| i)
        .or_else(|| (!engine.items().is_empty()).then_some(0))
        .map(|i| engine.items().id(i));
    if let Some(item) = item {
        let path = encode_path_segment(item);
        lines.push(format!("curl -s '{base}/v1/items/{path}/similar?k=5'"));
        lines.push(format!(
            "curl -s '{base}/v1/items/{path}/bought-together?k=5'"
        ));
        let body = serde_json::json!({ "items": [item], "k": 5 }).to_string();
        lines.push(format!(
            "curl -s -X POST -H 'Content-Type: application/json' -d {} {base}/v1/recommendations",
            shell_quote(&body)
        ));
    }
    let customer = (0..engine.customers().len())
        .find(|&c| engine.history().row_nnz(c) > 0)
        .map(|c| engine.customers().id(c as u32));
    if let Some(customer) = customer {
        let path = encode_path_segment(customer);
        lines.push(format!(
            "curl -s '{base}/v1/customers/{path}/recommendations?k=5'"
        ));
    }
    // A repeat customer shows the customer models best.
    let regular = engine
        .customer_book()
        .profiles()
        .position(|p| p.as_ref().is_some_and(|p| p.orders >= 3))
        .map(|c| engine.customers().id(c as u32));
    if let Some(customer) = regular {
        let path = encode_path_segment(customer);
        lines.push(format!("curl -s '{base}/v1/customers/{path}/profile'"));
        lines.push(format!(
            "curl -s '{base}/v1/customers/{path}/next-purchase?k=5'"
        ));
        lines.push(format!(
            "curl -s '{base}/v1/customers/{path}/buy-again?k=5'"
        ));
    }
    lines.push(format!("curl -s {base}/v1/kpis"));
    lines.push(format!(
        "curl -s '{base}/v1/audiences/reactivation?stage=dormant,at_risk&k=3&limit=5'"
    ));
    lines
}

/// Percent-encodes every byte of `segment` outside RFC 3986's unreserved set.
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_but_unreserved() {
        assert_eq!(encode_path_segment("AB-c.d_e~9"), "AB-c.d_e~9");
        assert_eq!(encode_path_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_path_segment("é'"), "%C3%A9%27");
    }

    #[test]
    fn quotes_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
