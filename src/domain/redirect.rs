//! Where a page may send a browser after sign-in: a path inside the same portal, decided the
//! way a browser will read it. The raw value is percent-decoded until it no longer changes (a
//! double-encoded `%252e%252e` is a `..` to a browser after one more round), its dot segments
//! are removed (RFC 3986 §5.2.4), and only then is it checked: no backslash, control
//! character, `//`, scheme or leftover escape, and it must be one of the given pages or below
//! one. The answer is the normalised path, which needs no escaping.

use percent_encoding::percent_decode_str;

/// The longest value considered.
const MAX_LEN: usize = 300;
/// Decoding rounds before a value that still changes is refused.
const MAX_ROUNDS: usize = 4;

/// `raw` as a path below one of `pages` (each like `/billing`), or `None`.
pub fn local_path(raw: &str, pages: &[&str]) -> Option<String> {
    if raw.len() > MAX_LEN || raw.contains('#') {
        return None;
    }
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    let decoded = decode_until_stable(path)?;
    if !decoded.starts_with('/') {
        return None;
    }
    let path = remove_dot_segments(&decoded);
    let path_ok = !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
        && pages
            .iter()
            .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')));
    if !path_ok {
        return None;
    }
    match query {
        None | Some("") => Some(path),
        // A query is kept only when it has nothing to decode: plain `name=value&…` pairs.
        Some(q)
            if q.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.=&".contains(&b)) =>
        {
            Some(format!("{path}?{q}"))
        }
        Some(_) => None,
    }
}

/// Percent-decodes until the value stops changing; `None` when it keeps changing or is not
/// UTF-8 once decoded.
fn decode_until_stable(raw: &str) -> Option<String> {
    let mut current = raw.to_string();
    for _ in 0..MAX_ROUNDS {
        let decoded = percent_decode_str(&current)
            .decode_utf8()
            .ok()?
            .into_owned();
        if decoded == current {
            return Some(current);
        }
        current = decoded;
    }
    None
}

/// RFC 3986 §5.2.4, for an absolute path: `.` and `..` segments go, `..` takes the segment
/// before it with it (never above the root).
pub fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    if let Some(rest) = input.strip_prefix('/') {
        input = rest;
    }
    let segments: Vec<&str> = input.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.into_iter().enumerate() {
        match segment {
            "." => trailing_slash = i == last,
            ".." => {
                output.pop();
                trailing_slash = i == last;
            }
            s => {
                output.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &output {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_go_as_in_rfc_3986() {
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("/mid/content=5/../6"), "/mid/6");
        assert_eq!(remove_dot_segments("/../../x"), "/x");
        assert_eq!(remove_dot_segments("/a/.."), "/");
        assert_eq!(remove_dot_segments("/a/b/."), "/a/b/");
        assert_eq!(remove_dot_segments("/a/b/"), "/a/b/");
        assert_eq!(remove_dot_segments("/"), "/");
        assert_eq!(remove_dot_segments("/a//b"), "/a//b");
    }

    #[test]
    fn decoding_stops_when_stable_and_refuses_endless_escapes() {
        assert_eq!(decode_until_stable("/a%252e%252e").as_deref(), Some("/a.."));
        assert_eq!(decode_until_stable("/plain").as_deref(), Some("/plain"));
        assert_eq!(decode_until_stable("%25252525252e"), None);
        assert_eq!(decode_until_stable("%ff"), None);
    }
}
